import assert from "node:assert/strict";
import { call, callJson } from "../src/http_client.ts";
import { freePort } from "../harness/service_process.ts";
import { callError } from "./support/call_error.ts";

/** Serves `handler` on a kernel-picked loopback port for the length of `fn`, then stops. */
async function withServer(
  handler: (req: Request) => Response | Promise<Response>,
  fn: (url: string) => Promise<void>,
): Promise<void> {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, handler);
  try {
    await fn(`http://127.0.0.1:${server.addr.port}`);
  } finally {
    await server.shutdown();
  }
}

const errorJson = (status: number, message: string, issues?: unknown) =>
  Response.json({ error: { status, message, ...(issues ? { issues } : {}) } }, { status });

Deno.test("a refused connection is an offline call error with status 0", async () => {
  const url = `http://127.0.0.1:${freePort()}`;
  const err = await callError(call(url, "/v1/status", { method: "GET" }));
  assert.equal(err.status, 0);
  assert.equal(err.offline, true);
  assert.equal(err.name, "ServiceCallError");
  assert.match(err.message, new RegExp(`^GET ${url}/v1/status failed: `));
  assert.match(err.message, /Connection refused/, "the cause says what happened");
});

Deno.test("a peer that does not answer in time is offline", async () => {
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  await withServer(async () => {
    await held;
    return new Response("late");
  }, async (url) => {
    try {
      const err = await callError(call(url, "/slow", { method: "POST" }, { timeoutMs: 100 }));
      assert.equal(err.status, 0);
      assert.ok(err.offline);
      assert.equal(err.message, `POST ${url}/slow failed: no answer within 100 ms`);
    } finally {
      release();
    }
  });
});

Deno.test("an HTTP error answer is offline only for 5xx", async (t) => {
  const cases: [number, boolean][] = [[400, false], [404, false], [409, false], [413, false], [
    500,
    true,
  ], [503, true]];
  await withServer((req) => {
    const status = Number(new URL(req.url).pathname.slice(1));
    return errorJson(status, `Failed with ${status}`);
  }, async (url) => {
    for (const [status, offline] of cases) {
      await t.step(`${status}`, async () => {
        const err = await callError(call(url, `/${status}`, { method: "PUT" }));
        assert.equal(err.status, status);
        assert.equal(err.offline, offline);
        assert.equal(err.message, `PUT ${url}/${status} answered ${status}: Failed with ${status}`);
      });
    }
  });
});

Deno.test("a call error carries the service's issues, or just the status for a foreign body", async () => {
  const issues = [{ path: ["extents"], message: "Too small" }];
  await withServer((req) => {
    if (req.url.endsWith("/bad")) return errorJson(400, "Invalid json: extents = []", issues);
    return new Response("<html>Bad gateway</html>", { status: 502 });
  }, async (url) => {
    const bad = await callError(call(url, "/bad", { method: "POST", json: {} }));
    assert.equal(bad.message, `POST ${url}/bad answered 400: Invalid json: extents = []`);
    assert.deepEqual(bad.issues, issues);
    const proxy = await callError(call(url, "/proxy", {}));
    assert.equal(proxy.status, 502);
    assert.ok(proxy.offline);
    assert.equal(proxy.message, `GET ${url}/proxy answered 502`);
    assert.equal(proxy.issues, undefined);
  });
});

Deno.test("a call sends the bearer token and a JSON body, and callJson parses the answer", async () => {
  await withServer(async (req) => {
    return Response.json({
      method: req.method,
      authorization: req.headers.get("authorization"),
      contentType: req.headers.get("content-type"),
      trace: req.headers.get("x-trace"),
      body: await req.json(),
    });
  }, async (url) => {
    const answer = await callJson<Record<string, unknown>>(
      url,
      "/v1/track",
      { method: "POST", json: { volume: "db0" }, headers: { "x-trace": "t1" } },
      { token: "s3cret" },
    );
    assert.deepEqual(answer, {
      method: "POST",
      authorization: "Bearer s3cret",
      contentType: "application/json",
      trace: "t1",
      body: { volume: "db0" },
    });
  });
});

Deno.test("a call without a token sends no authorization header", async () => {
  await withServer(
    (req) => new Response(req.headers.get("authorization") ?? "none"),
    async (url) => {
      const res = await call(url, "/x", {});
      assert.equal(await res.text(), "none");
    },
  );
});
