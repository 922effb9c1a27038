/**
 * The API reference of every service (issue 11 item 4): each app's `GET /openapi.json` lists every
 * route the app registered (read from `app.routes`, so a route added without a description fails
 * here) and nothing it does not serve, is a valid OpenAPI 3.1 document whose every `$ref`
 * resolves, and `GET /docs` is a page whose every script and style is served by the service itself.
 */
import assert from "node:assert/strict";
import { Validator } from "@seriousme/openapi-schema-validator";
import { createRoute } from "@hono/zod-openapi";
import { z } from "zod";
import { openBackup } from "../backup/service.ts";
import { HostAgent } from "../host/agent/host_agent.ts";
import { createHostApp } from "../host/app.ts";
import { apiRoute, eventStreamResponse, htmlResponse, newApiApp } from "../src/api_route.ts";
import { applyServiceBasics } from "../src/service.ts";
import { ManualClock } from "../src/clock.ts";
import { FakeBackup, FakeTracker } from "./support/fake_ports.ts";
import { StepTimers } from "./support/step_timers.ts";
import { trackerHarness } from "./support/tracker_harness.ts";

/** What the test needs of an app. */
interface App {
  routes: { method: string; path: string }[];
  request(path: string, init?: RequestInit): Response | Promise<Response>;
}

// deno-lint-ignore no-explicit-any
type Doc = any; // an OpenAPI document, walked field by field

const methods = ["get", "put", "post", "delete", "patch", "head", "options"];

/** `METHOD /path/{p}` of every concrete route the app registered (middleware `*` left out). */
function registeredRoutes(app: App): Set<string> {
  const out = new Set<string>();
  for (const r of app.routes) {
    if (r.method === "ALL" || r.path.includes("*")) continue;
    out.add(`${r.method} ${r.path.replaceAll(/:(\w+)/g, "{$1}")}`);
  }
  return out;
}

/** `METHOD /path/{p}` of every operation the document describes. */
function documentedRoutes(doc: Doc): Set<string> {
  const out = new Set<string>();
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    for (const m of methods) {
      if ((item as Record<string, unknown>)[m]) out.add(`${m.toUpperCase()} ${path}`);
    }
  }
  return out;
}

/** Every `$ref` in `doc` that does not point at something in it. */
function danglingRefs(doc: Doc): string[] {
  const dangling: string[] = [];
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) return node.forEach(walk);
    if (node === null || typeof node !== "object") return;
    for (const [key, value] of Object.entries(node)) {
      if (key === "$ref" && typeof value === "string") {
        let target: unknown = doc;
        for (const part of value.replace(/^#\//, "").split("/")) {
          const name = part.replaceAll("~1", "/").replaceAll("~0", "~");
          target = target && typeof target === "object"
            ? (target as Record<string, unknown>)[name]
            : undefined;
        }
        if (!value.startsWith("#/") || target === undefined) dangling.push(value);
      } else walk(value);
    }
  };
  walk(doc);
  return dangling;
}

async function documentOf(app: App, headers: Record<string, string> = {}): Promise<Doc> {
  const res = await app.request("/openapi.json", { headers });
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
  return await res.json();
}

/** The checks every service's document must pass. */
async function checkService(app: App, service: string, headers: Record<string, string> = {}) {
  const doc = await documentOf(app, headers);
  assert.equal(doc.openapi, "3.1.0");
  assert.equal(doc.info.title, `trackmirror ${service}`);
  assert.equal(typeof doc.info.version, "string");
  const registered = registeredRoutes(app);
  const documented = documentedRoutes(doc);
  assert.deepEqual([...registered].filter((r) => !documented.has(r)), [], "routes not documented");
  assert.deepEqual([...documented].filter((r) => !registered.has(r)), [], "documented, not served");
  assert.deepEqual(danglingRefs(doc), []);
  const validator = new Validator();
  const result = await validator.validate(structuredClone(doc));
  assert.ok(result.valid, JSON.stringify(result.errors, null, 1)?.slice(0, 2000));
  await checkDocsPage(app, headers);
  return doc;
}

/** `/docs` is HTML whose scripts and styles are all this service's own paths, and answer. */
async function checkDocsPage(app: App, headers: Record<string, string>): Promise<void> {
  const page = await app.request("/docs", { headers });
  assert.equal(page.status, 200);
  assert.match(page.headers.get("content-type") ?? "", /^text\/html/);
  const html = await page.text();
  const assets = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]);
  assert.ok(assets.length >= 3, `the page loads its script, style and start: ${assets}`);
  for (const asset of assets) {
    assert.match(asset, /^\/docs\//, `${asset} is served by the service, not a CDN`);
    const res = await app.request(asset, { headers });
    assert.equal(res.status, 200, asset);
    assert.match(res.headers.get("content-type") ?? "", /^text\/(css|javascript)/);
    assert.ok((await res.arrayBuffer()).byteLength > 0, asset);
  }
}

/** The operation `METHOD path` of `doc`. */
function operation(doc: Doc, method: string, path: string): Doc {
  const op = doc.paths?.[path]?.[method];
  assert.ok(op, `${method} ${path} is documented`);
  return op;
}

Deno.test("the tracker's document lists every route it serves and is valid OpenAPI 3.1", async () => {
  const h = await trackerHarness();
  try {
    const doc = await checkService(h.app, "tracker");
    // The documented request is the validated one: its fields, bounds and name pattern.
    const track = operation(doc, "post", "/v1/track").requestBody.content["application/json"];
    assert.deepEqual(track.schema.required.sort(), ["extents", "host", "volume"]);
    assert.equal(track.schema.properties.extents.maxItems, 4096);
    const log = operation(doc, "get", "/v1/volumes/{name}/log");
    const name = log.parameters.find((p: Doc) => p.name === "name");
    assert.equal(name.in, "path");
    assert.equal(name.schema.pattern, "^[a-z0-9][a-z0-9._-]{0,63}$");
    assert.ok(log.responses["200"].content["application/json"].schema.properties.nextCursor);
    assert.ok(
      operation(doc, "get", "/metrics").responses["200"].content["text/plain; version=0.0.4"],
    );
  } finally {
    await h.close();
  }
});

Deno.test("the backup's document lists every route it serves, with batches as bytes", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "openapi_backup_" });
  const backup = await openBackup({ dataDir, log: () => {} });
  try {
    const doc = await checkService(backup.app, "backup");
    const writes = operation(doc, "post", "/v1/volumes/{name}/writes");
    assert.deepEqual(Object.keys(writes.requestBody.content), ["application/octet-stream"]);
    assert.deepEqual(
      writes.parameters.filter((p: Doc) => p.in === "header").map((p: Doc) => p.name).sort(),
      ["x-trackmirror-epoch", "x-trackmirror-lease-epoch"],
    );
    assert.ok(writes.responses["503"], "backpressure is documented");
    const put = operation(doc, "put", "/v1/volumes/{name}");
    assert.ok(put.responses["201"] && put.responses["200"]);
  } finally {
    await backup.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("the host agent's document lists every route it serves, with data as bytes", async () => {
  const dir = await Deno.makeTempDir({ prefix: "openapi_host_" });
  const backup = new FakeBackup();
  const agent = await HostAgent.open({
    hostId: "host0",
    advertiseUrl: "http://127.0.0.1:1",
    volumes: [{ name: "vol0", path: `${dir}/vol0.img`, sizeBytes: 1 << 20 }],
    regionBytes: 64 * 1024,
    tracker: new FakeTracker(),
    backup,
    clock: new ManualClock(),
    probe: { timers: new StepTimers() },
    linkFactory: backup.linkFactory,
  });
  try {
    const doc = await checkService(createHostApp(agent), "host");
    const put = operation(doc, "put", "/v1/volumes/{name}/data");
    assert.deepEqual(Object.keys(put.requestBody.content), ["application/octet-stream"]);
    assert.ok(put.responses["204"]);
    const get = operation(doc, "get", "/v1/volumes/{name}/data");
    assert.deepEqual(get.parameters.map((p: Doc) => p.name).sort(), ["length", "name", "offset"]);
    assert.deepEqual(Object.keys(get.responses["200"].content), ["application/octet-stream"]);
    const resync = operation(doc, "post", "/v1/volumes/{name}/resync");
    assert.equal(resync.requestBody.required, false);
  } finally {
    await agent.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("with a token, the document names the bearer scheme and /healthz needs none", async () => {
  const h = await trackerHarness({ token: "s3cret" });
  try {
    assert.equal((await h.app.request("/openapi.json")).status, 401);
    const doc = await checkService(h.app, "tracker", { authorization: "Bearer s3cret" });
    assert.deepEqual(doc.components.securitySchemes.bearer, {
      type: "http",
      scheme: "bearer",
      description: doc.components.securitySchemes.bearer.description,
    });
    assert.deepEqual(doc.security, [{ bearer: [] }]);
    assert.deepEqual(operation(doc, "get", "/healthz").security, []);
  } finally {
    await h.close();
  }
});

Deno.test("a route registered without a description is caught as undocumented", async () => {
  const app = newApiApp();
  applyServiceBasics(app, "test");
  app.get("/v1/plain/:id", (c) => c.text("not described"));
  const doc = await documentOf(app);
  const missing = [...registeredRoutes(app)].filter((r) => !documentedRoutes(doc).has(r));
  assert.deepEqual(missing, ["GET /v1/plain/{id}"]);
});

Deno.test("apiRoute validates with the documented schemas and keeps the 400 shape", async (t) => {
  const app = newApiApp();
  applyServiceBasics(app, "test");
  const body = z.object({ offset: z.number().int().nonnegative() });
  const route = createRoute({
    method: "post",
    path: "/v1/things/{name}",
    request: {
      params: z.object({ name: z.string().regex(/^[a-z]+$/) }),
      body: { required: true, content: { "application/json": { schema: body } } },
    },
    responses: { 200: { description: "ok" } },
  });
  apiRoute(app, route, (c) => c.json({ ...c.req.valid("param"), ...c.req.valid("json") }, 200));
  // The same route through @hono/zod-openapi's own wiring, refused by newApiApp's defaultHook.
  app.openapi({ ...route, path: "/v2/things/{name}" }, (c) => c.json(c.req.valid("json"), 200));
  const post = (path: string, json: unknown, type = "application/json") =>
    app.request(path, {
      method: "POST",
      headers: { "content-type": type },
      body: JSON.stringify(json),
    });
  await t.step("a valid request passes", async () => {
    const res = await post("/v1/things/abc", { offset: 5 });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { name: "abc", offset: 5 });
  });
  const cases: [string, string, unknown, string | undefined, RegExp][] = [
    [
      "a bad body value is named",
      "/v1/things/abc",
      { offset: -5 },
      undefined,
      /^Invalid json: offset = -5: /,
    ],
    [
      "a bad path parameter is named",
      "/v1/things/ABC",
      { offset: 1 },
      undefined,
      /^Invalid param: name = "ABC": /,
    ],
    [
      "a body of another type is refused as missing fields, as before",
      "/v1/things/abc",
      { offset: 1 },
      "text/plain",
      /^Invalid json: offset = missing: /,
    ],
    [
      "app.openapi() routes get the same shape",
      "/v2/things/abc",
      { offset: -5 },
      undefined,
      /^Invalid json: offset = -5: /,
    ],
  ];
  for (const [what, path, json, type, message] of cases) {
    await t.step(what, async () => {
      const res = await post(path, json, type);
      assert.equal(res.status, 400);
      const { error } = await res.json();
      assert.equal(error.status, 400);
      assert.match(error.message, message);
      assert.ok(Array.isArray(error.issues));
    });
  }
});

Deno.test("event-stream and HTML routes declared with the helpers make a valid document", async () => {
  const app = newApiApp();
  applyServiceBasics(app, "test");
  const event = z.object({ type: z.enum(["mode", "resync"]), at: z.number(), volume: z.string() });
  apiRoute(app, {
    method: "get",
    path: "/v1/events",
    summary: "State changes as server-sent events",
    responses: { 200: eventStreamResponse("The stream", event) },
  }, (c) => c.body("data: {}\n\n", 200, { "content-type": "text/event-stream" }));
  apiRoute(app, {
    method: "get",
    path: "/",
    summary: "The dashboard",
    responses: { 200: htmlResponse("The page") },
  }, (c) => c.html("<!doctype html><title>t</title>"));
  const doc = await documentOf(app);
  const validator = new Validator();
  const result = await validator.validate(structuredClone(doc));
  assert.ok(result.valid, JSON.stringify(result.errors, null, 1)?.slice(0, 2000));
  const media = operation(doc, "get", "/v1/events").responses["200"].content["text/event-stream"];
  assert.deepEqual(media["x-event-schema"].required.sort(), ["at", "type", "volume"]);
  assert.ok(operation(doc, "get", "/").responses["200"].content["text/html"]);
  assert.deepEqual([...registeredRoutes(app)].filter((r) => !documentedRoutes(doc).has(r)), []);
});
