import assert from "node:assert/strict";
import { newApiApp } from "../src/api_route.ts";
import { z } from "zod";
import { badRequest, notFound, unavailable } from "../src/errors.ts";
import { Metrics } from "../src/metrics.ts";
import { applyServiceBasics } from "../src/service.ts";
import { validate } from "../src/validate.ts";
import { family, parseExposition } from "./support/prometheus.ts";
import { version } from "../src/version.ts";

/** A small service with the shared basics and routes that fail in each way a real one can. */
function testApp(opts: { token?: string; metrics?: Metrics } = {}) {
  const app = newApiApp();
  applyServiceBasics(app, "test", opts);
  app.get("/missing", () => {
    throw notFound(`Volume "db9" not found`);
  });
  app.get("/busy", () => {
    throw unavailable("Journal is full");
  });
  app.get("/bad", () => {
    throw badRequest("Bad range", [{ path: ["offset"] }]);
  });
  app.get("/bug", () => {
    throw new TypeError("x is undefined");
  });
  app.post(
    "/track",
    validate("json", z.object({ offset: z.number().int().nonnegative() })),
    (c) => c.json({ offset: c.req.valid("json").offset }),
  );
  return app;
}

/** Silences console.error (the 500 path logs the error) while `fn` runs, returning what it logged. */
async function quietly(fn: () => Promise<void>): Promise<string[]> {
  const logged: string[] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => void logged.push(args.map(String).join(" "));
  try {
    await fn();
  } finally {
    console.error = original;
  }
  return logged;
}

Deno.test("a service answers every failure with the one JSON error shape", async (t) => {
  const app = testApp();
  const cases: [string, number, string][] = [
    ["/missing", 404, `Volume "db9" not found`],
    ["/busy", 503, "Journal is full"],
    ["/nowhere", 404, "No route GET /nowhere"],
  ];
  for (const [path, status, message] of cases) {
    await t.step(path, async () => {
      let res!: Response;
      const logged = await quietly(async () => {
        res = await app.request(path);
      });
      assert.equal(res.status, status);
      assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
      assert.deepEqual(await res.json(), { error: { status, message } });
      assert.equal(logged.length, status === 500 ? 1 : 0, "only internal errors are logged");
    });
  }
  await t.step("/bad keeps its issues", async () => {
    const res = await app.request("/bad");
    assert.deepEqual(await res.json(), {
      error: { status: 400, message: "Bad range", issues: [{ path: ["offset"] }] },
    });
  });
});

Deno.test("a service hides an unexpected error's stack from the client and logs it", async () => {
  const app = testApp();
  let res!: Response;
  const logged = await quietly(async () => {
    res = await app.request("/bug");
  });
  assert.equal(res.status, 500);
  const body = await res.text();
  assert.deepEqual(JSON.parse(body), {
    error: { status: 500, message: "Internal error: x is undefined" },
  });
  assert.ok(!body.includes("src_service.test.ts"), body);
  assert.equal(logged.length, 1);
  // One log line (src/log_line.ts): time, level, service, then the request and the stack.
  assert.match(logged[0], /^\S+Z ERROR host test: GET \/bug: TypeError: x is undefined/);
});

Deno.test("validation failures name the field and value; malformed JSON is a 400", async (t) => {
  const app = testApp();
  const post = (body: string) =>
    app.request("/track", {
      method: "POST",
      body,
      headers: { "content-type": "application/json" },
    });
  await t.step("a valid body", async () => {
    const res = await post(`{"offset":4096}`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { offset: 4096 });
  });
  await t.step("a negative offset", async () => {
    const res = await post(`{"offset":-5}`);
    assert.equal(res.status, 400);
    const { error } = await res.json();
    assert.equal(error.status, 400);
    assert.match(error.message, /^Invalid json: offset = -5: /);
    assert.equal(error.issues[0].path[0], "offset");
  });
  await t.step("malformed JSON", async () => {
    const res = await post(`{"offset":`);
    assert.equal(res.status, 400);
    const { error } = await res.json();
    assert.equal(error.status, 400);
    assert.match(error.message, /JSON/);
  });
});

Deno.test("a token guards every route but /healthz", async (t) => {
  const metrics = new Metrics();
  const app = testApp({ token: "s3cret", metrics });
  const auth = { authorization: "Bearer s3cret" };
  await t.step("/healthz needs no token", async () => {
    const res = await app.request("/healthz");
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { ok: true, service: "test", version, pid: Deno.pid });
  });
  for (const path of ["/missing", "/metrics", "/nowhere"]) {
    const wrong: Record<string, string>[] = [
      {},
      { authorization: "Bearer wrong" },
      { authorization: "s3cret" },
      { authorization: "Bearer s3cre" },
      { authorization: "Bearer  s3cret" },
      { authorization: "Basic s3cret" },
    ];
    for (const headers of wrong) {
      await t.step(`${path} with ${JSON.stringify(headers)}`, async () => {
        const res = await app.request(path, { headers });
        assert.equal(res.status, 401);
        assert.deepEqual(await res.json(), {
          error: { status: 401, message: "Missing or wrong bearer token" },
        });
      });
    }
  }
  await t.step("the right token passes", async () => {
    assert.equal((await app.request("/missing", { headers: auth })).status, 404);
    assert.equal((await app.request("/metrics", { headers: auth })).status, 200);
  });
});

Deno.test("a service without a token serves /metrics as valid Prometheus text", async () => {
  const metrics = new Metrics({ defaults: false });
  let pending = 3;
  metrics.count("trackmirror_test_writes_total", "Writes mirrored", 1, { volume: "vol0" });
  metrics.count("trackmirror_test_writes_total", "Writes mirrored", 4, { volume: "vol0" });
  metrics.count("trackmirror_test_writes_total", "Writes mirrored", 2, { volume: "vol1" });
  metrics.gauge(
    "trackmirror_test_journal_pending_bytes",
    "Journal bytes pending",
    [],
    (set) => set({}, pending),
  );
  const app = testApp({ metrics });
  pending = 7;
  const res = await app.request("/metrics");
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  const families = parseExposition(text);
  const writes = family(families, "trackmirror_test_writes_total");
  assert.equal(writes.type, "COUNTER");
  assert.deepEqual(
    writes.metrics.map((m) => [m.labels?.volume, m.value]),
    [["vol0", "5"], ["vol1", "2"]],
  );
  const gauge = family(families, "trackmirror_test_journal_pending_bytes");
  assert.equal(gauge.metrics[0].value, "7", "a gauge is read at scrape time");
  assert.equal(
    text.match(/# HELP trackmirror_test_writes_total /g)?.length,
    1,
    "one HELP a family",
  );
  assert.equal((await testApp().request("/metrics")).status, 404, "no metrics, no route");
});

Deno.test("badly named metric families are refused when registered", () => {
  const metrics = new Metrics({ defaults: false });
  assert.throws(() => metrics.count("writes_total", "no prefix"), /must match/);
  assert.throws(() => metrics.counter("trackmirror_writes", "no _total"), /_total/);
  assert.throws(() => metrics.gauge("trackmirror_lag_total", "a gauge"), /must not end in _total/);
  assert.throws(() => metrics.histogram("trackmirror_ack_latency", "no unit"), /base unit/);
  assert.throws(() => metrics.gauge('trackmirror_x{volume="a"}', "labels baked in"), /must match/);
});
