/** The ServiceCallError a service call rejects with; fails the test when it succeeds or throws else. */
import assert from "node:assert/strict";
import { ServiceCallError } from "../../src/http_client.ts";

export async function callError(p: Promise<unknown>): Promise<ServiceCallError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof ServiceCallError, `expected a ServiceCallError, got ${err}`);
    return err;
  }
  assert.fail("the call succeeded");
}
