/**
 * The fault simulation's write model: acknowledged bytes must be on the primary; a failed write's
 * bytes may be old or new, and nothing else.
 */
import assert from "node:assert/strict";
import { WriteModel } from "../harness/write_model.ts";

const bytes = (...values: number[]) => new Uint8Array(values);

Deno.test("write model accepts the acknowledged bytes and refuses a lost acknowledged write", () => {
  const model = new WriteModel(8);
  model.acknowledged(model.issue(), 2, bytes(7, 7));
  assert.equal(model.check(bytes(0, 0, 7, 7, 0, 0, 0, 0)), null);
  assert.deepEqual(model.check(bytes(0, 0, 7, 0, 0, 0, 0, 0)), {
    offset: 3,
    actual: 0,
    expected: 7,
    allowed: [],
  });
});

Deno.test("write model accepts old or new where a write failed, and nothing else there", () => {
  const model = new WriteModel(4);
  model.acknowledged(model.issue(), 0, bytes(1, 1, 1, 1));
  model.failed(model.issue(), 1, bytes(9, 9));
  assert.equal(model.check(bytes(1, 9, 1, 1)), null, "new on one byte, old on the other");
  const again = new WriteModel(4);
  again.acknowledged(again.issue(), 0, bytes(1, 1, 1, 1));
  again.failed(again.issue(), 1, bytes(9, 9));
  assert.equal(again.check(bytes(1, 5, 1, 1))?.offset, 1, "a value no write carried");
});

Deno.test("write model: a later acknowledged write supersedes an earlier failed one", () => {
  const model = new WriteModel(2);
  model.failed(model.issue(), 0, bytes(9, 9));
  model.acknowledged(model.issue(), 0, bytes(3, 3));
  assert.deepEqual(model.check(bytes(9, 3)), { offset: 0, actual: 9, expected: 3, allowed: [] });
});

Deno.test("write model adopts what the primary holds for failed writes after a good check", () => {
  const model = new WriteModel(2);
  model.acknowledged(model.issue(), 0, bytes(1, 1));
  model.failed(model.issue(), 0, bytes(9, 9));
  assert.equal(model.check(bytes(9, 1)), null);
  assert.equal(model.check(bytes(1, 1))?.offset, 0, "the failed write landed: it stays landed");
  assert.equal(model.writesChecked, 1);
});

Deno.test("write model refuses a write outside the volume", () => {
  const model = new WriteModel(4);
  assert.throws(() => model.acknowledged(model.issue(), 3, bytes(1, 1)), /3\+2 lies outside/);
});
