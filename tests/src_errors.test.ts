import assert from "node:assert/strict";
import {
  badRequest,
  conflict,
  errorBody,
  notFound,
  ServiceError,
  tooLarge,
  unavailable,
} from "../src/errors.ts";

Deno.test("service error helpers carry their HTTP status", async (t) => {
  const cases: [string, ServiceError, number][] = [
    ["badRequest", badRequest("Offset -1 is negative"), 400],
    ["notFound", notFound(`Volume "db0" not found`), 404],
    ["conflict", conflict(`Volume "db0" is leased by "h2"`), 409],
    ["tooLarge", tooLarge("Batch of 9 MiB exceeds 8 MiB"), 413],
    ["unavailable", unavailable("Journal full"), 503],
  ];
  for (const [name, err, status] of cases) {
    await t.step(name, () => {
      assert.ok(err instanceof Error);
      assert.equal(err.name, "ServiceError");
      assert.equal(err.status, status);
      assert.deepEqual(errorBody(err), { error: { status, message: err.message } });
    });
  }
});

Deno.test("errorBody keeps a service error's issues", () => {
  const issues = [{ path: ["extents", 0, "offset"], message: "Too small" }];
  assert.deepEqual(errorBody(badRequest("Invalid json: extents.0.offset = -5", issues)), {
    error: { status: 400, message: "Invalid json: extents.0.offset = -5", issues },
  });
});

Deno.test("errorBody turns an unexpected error into a 500 without a stack trace", async (t) => {
  await t.step("an Error", () => {
    const err = new TypeError("Cannot read properties of undefined (reading 'size')");
    assert.ok(err.stack?.includes("    at "), "the error has a stack to leak");
    const body = errorBody(err);
    assert.deepEqual(body, {
      error: {
        status: 500,
        message: "Internal error: Cannot read properties of undefined (reading 'size')",
      },
    });
    assert.ok(!JSON.stringify(body).includes(" at "));
  });
  await t.step("a thrown string", () => {
    assert.deepEqual(errorBody("boom"), {
      error: { status: 500, message: "Internal error: boom" },
    });
  });
  await t.step("undefined", () => {
    assert.deepEqual(errorBody(undefined), {
      error: { status: 500, message: "Internal error: undefined" },
    });
  });
  await t.step("an error claiming a 5xx status", () => {
    const err = Object.assign(new Error("Upstream broke"), { status: 502 });
    assert.deepEqual(errorBody(err), {
      error: { status: 500, message: "Internal error: Upstream broke" },
    });
  });
});

Deno.test("errorBody passes on a framework error's 4xx status", async (t) => {
  await t.step("an Error with status 400 (like Hono's HTTPException)", () => {
    const err = Object.assign(new Error("Malformed JSON in request body"), { status: 400 });
    assert.deepEqual(errorBody(err), {
      error: { status: 400, message: "Malformed JSON in request body" },
    });
  });
  await t.step("a plain object with status 400 and a message", () => {
    assert.deepEqual(errorBody({ status: 400, message: "Bad range header" }), {
      error: { status: 400, message: "Bad range header" },
    });
  });
  await t.step("a status that is not a number", () => {
    const err = Object.assign(new Error("Odd"), { status: "400" });
    assert.equal(errorBody(err).error.status, 500);
  });
});
