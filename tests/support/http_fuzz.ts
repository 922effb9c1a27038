/**
 * Request generators and checks for fuzzing the HTTP apps in process (`app.request()`). Routes are
 * taken from the app itself (`app.routes`), so a route added later is fuzzed without touching the
 * fuzzer. Each request mixes what a careless or hostile client sends: other methods, bad or
 * unknown names in the path, query strings of odd numbers and strings, JSON that is almost a
 * valid body (one field wrong, missing or extra), arbitrary JSON, raw bytes, wrong content types.
 */
import assert from "node:assert/strict";
import fc from "fast-check";

/** A route as Hono lists it. */
export interface RouteInfo {
  method: string;
  path: string;
}

/** One generated request. */
export interface FuzzRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string | Uint8Array;
}

/** The distinct concrete routes of an app (middleware and wildcards left out). */
export function routesOf(app: { routes: RouteInfo[] }): RouteInfo[] {
  const seen = new Map<string, RouteInfo>();
  for (const r of app.routes) {
    if (r.method === "ALL" || r.path.includes("*")) continue;
    seen.set(`${r.method} ${r.path}`, { method: r.method, path: r.path });
  }
  return [...seen.values()];
}

const weird = [
  "",
  "-1",
  "0",
  "1",
  "4096",
  "65536",
  "1e3",
  "0x10",
  "1.5",
  " 1",
  "9007199254740991",
  "9007199254740993",
  "99999999999999999999999",
  "NaN",
  "Infinity",
  "null",
  "true",
  "abc",
  "1:2",
  "host0:3",
  "2026-11-24T18:00:00Z",
  "%00",
  "é",
  "../..",
  "a".repeat(300),
];

/** A string a query value or header could be. */
export const oddString = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...weird) },
  { weight: 1, arbitrary: fc.string({ maxLength: 20 }) },
  { weight: 1, arbitrary: fc.nat().map(String) },
);

/** Any JSON value a field could hold, biased toward the edges of numbers. */
export const oddValue: fc.Arbitrary<unknown> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.constantFrom(
      0,
      1,
      -1,
      512,
      4096,
      65536,
      0.5,
      2 ** 31,
      2 ** 32,
      2 ** 53 - 1,
      2 ** 53 + 2,
      1e300,
      -0,
    ),
  },
  { weight: 2, arbitrary: oddString },
  { weight: 1, arbitrary: fc.constantFrom(null, true, false, [], {}, [1], { offset: 0 }) },
  { weight: 1, arbitrary: fc.integer() },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
);

/** Field names the services use, so random objects hit real fields. */
const fieldNames = [
  "volume",
  "host",
  "extents",
  "offset",
  "length",
  "time",
  "sizeBytes",
  "regionBytes",
  "ownerHost",
  "ownerUrl",
  "leaseMs",
  "takeover",
  "token",
  "epoch",
  "since",
  "until",
  "cursor",
  "limit",
  "__proto__",
  "constructor",
];

/** Query keys the services read. */
const queryKeys = ["offset", "length", "since", "until", "cursor", "limit", "host", "x"];

/** Mutates a valid body: one field replaced, removed, or an extra one added. */
function nearValid(valid: Record<string, unknown>): fc.Arbitrary<unknown> {
  const keys = Object.keys(valid);
  return fc.tuple(fc.nat(), fc.constantFrom("replace", "remove", "add", "keep", "extent"), oddValue)
    .map(([i, how, value]) => {
      const body: Record<string, unknown> = structuredClone(valid);
      const key = keys[i % keys.length];
      if (how === "replace") body[key] = value;
      else if (how === "remove") delete body[key];
      else if (how === "add") {
        // defineProperty, so "__proto__" becomes an own key that JSON.stringify sends.
        Object.defineProperty(body, fieldNames[i % fieldNames.length], {
          value,
          enumerable: true,
          writable: true,
          configurable: true,
        });
      } else if (how === "extent" && Array.isArray(body.extents)) {
        body.extents = [{ offset: value, length: 1 }, { offset: 0, length: value }][i % 2];
      }
      return body;
    });
}

/** What the fuzzer knows of a service: valid names and valid bodies by route path. */
export interface FuzzTarget {
  routes: RouteInfo[];
  /** Names that exist (registered volumes); the first is the one most requests use. */
  names: string[];
  /** A valid JSON body per route path, mutated into near-valid ones. */
  bodies: Record<string, Record<string, unknown>>;
  /** A valid raw body per route path (e.g. a journal batch), mutated byte by byte. */
  rawBodies?: Record<string, Uint8Array>;
  /** A valid query per route path, mutated like bodies. */
  queries?: Record<string, Record<string, string>>;
  /** Extra headers worth trying, name → values. */
  headers?: Record<string, string[]>;
}

const nameArb = (names: string[]) =>
  fc.oneof(
    { weight: 12, arbitrary: fc.constantFrom(...names) },
    { weight: 1, arbitrary: fc.constantFrom("unknown0", "x") },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        "Vol!",
        "a".repeat(65),
        "..",
        "%2e%2e",
        "%00",
        "%F0%9F%92%A5",
        "-a",
        "UPPER",
        "a%2Fb",
        "%",
      ),
    },
    { weight: 1, arbitrary: fc.string({ minLength: 1, maxLength: 12 }).map(encodeURIComponent) },
  );

const contentTypes = [
  "application/json",
  "application/json; charset=utf-8",
  "application/octet-stream",
  "text/plain",
  "multipart/form-data; boundary=x",
  "application/x-www-form-urlencoded",
  "application/jsonx",
];

/** Requests against the routes of `target`. */
export function requestArb(target: FuzzTarget): fc.Arbitrary<FuzzRequest> {
  const route = fc.constantFrom(...target.routes);
  const method = fc.oneof(
    { weight: 8, arbitrary: fc.constant<string | undefined>(undefined) },
    {
      weight: 1,
      arbitrary: fc.constantFrom("GET", "PUT", "POST", "DELETE", "PATCH", "OPTIONS", "HEAD"),
    },
  );
  const randomQuery = fc.dictionary(fc.constantFrom(...queryKeys), oddString, { maxKeys: 3 });
  const known = Object.entries(target.headers ?? {});
  const headerArb: fc.Arbitrary<Record<string, string>> = known.length === 0
    ? fc.constant({})
    : fc.oneof(
      { weight: 3, arbitrary: fc.constant({}) },
      {
        weight: 1,
        arbitrary: fc.tuple(fc.constantFrom(...known), fc.nat(), oddString).map((
          [[k, vs], i, odd],
        ) => ({ [k]: i % 3 === 0 ? odd : vs[i % vs.length] })),
      },
    );
  return fc.record({
    route,
    method,
    name: nameArb(target.names),
    randomQuery,
    queryHow: fc.tuple(fc.nat(), fc.constantFrom("keep", "keep", "replace", "remove", "random")),
    oddQueryValue: oddString,
    headers: headerArb,
    contentType: fc.oneof(
      { weight: 5, arbitrary: fc.constant(undefined) },
      { weight: 1, arbitrary: fc.constantFrom(...contentTypes) },
    ),
    bodyKind: fc.constantFrom("none", "near-valid", "near-valid", "near-valid", "json", "bytes"),
    json: fc.jsonValue({ maxDepth: 3 }),
    bytes: fc.uint8Array({ maxLength: 200 }),
    mutation: fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.nat(3)),
    seed: fc.nat(),
  }).chain((r) => {
    const valid = target.bodies[r.route.path];
    const nearArb = valid ? nearValid(valid) : fc.constant(r.json);
    return nearArb.map((near) => {
      const path = r.route.path.replace(/:(\w+)/g, () => r.name);
      const query = pickQuery(
        target.queries?.[r.route.path],
        r.randomQuery,
        r.queryHow,
        r.oddQueryValue,
      );
      const qs = new URLSearchParams(query).toString();
      const headers: Record<string, string> = { ...r.headers };
      let body: string | Uint8Array | undefined;
      const raw = target.rawBodies?.[r.route.path];
      if (r.bodyKind === "near-valid" && raw) {
        body = mutateBytes(raw, r.mutation);
        headers["content-type"] = "application/octet-stream";
      } else if (r.bodyKind === "near-valid") {
        body = JSON.stringify(near);
        headers["content-type"] = "application/json";
      } else if (r.bodyKind === "json") {
        body = JSON.stringify(r.json);
        headers["content-type"] = "application/json";
      } else if (r.bodyKind === "bytes") body = r.bytes;
      if (r.contentType !== undefined) headers["content-type"] = r.contentType;
      const method = r.method ?? r.route.method;
      if (method === "GET" || method === "HEAD") body = undefined;
      return { method, path: qs ? `${path}?${qs}` : path, headers, body };
    });
  });
}

/** A valid query kept, with one value replaced or one key removed, or a random one. */
function pickQuery(
  valid: Record<string, string> | undefined,
  random: Record<string, string>,
  [i, how]: [number, string],
  odd: string,
): Record<string, string> {
  if (!valid || how === "random") return random;
  const q = { ...valid };
  const keys = Object.keys(q);
  if (how === "replace") q[keys[i % keys.length]] = odd;
  if (how === "remove") delete q[keys[i % keys.length]];
  return q;
}

/** Flips a byte, cuts, or leaves a valid raw body as it is. */
function mutateBytes(raw: Uint8Array, [at, value, how]: [number, number, number]): Uint8Array {
  const out = raw.slice();
  if (how === 0) return out;
  if (how === 1) out[at % out.length] ^= value || 1;
  if (how === 2) return out.slice(0, at % out.length);
  if (how === 3) out[at % out.length] = value;
  return out;
}

/** Sends `r` to `app`; returns the status and the parsed JSON body of an error. */
export async function send(
  app: { request(path: string, init: RequestInit): Response | Promise<Response> },
  r: FuzzRequest,
): Promise<{ status: number; text: string; contentType: string | null }> {
  const res = await app.request(r.path, {
    method: r.method,
    headers: r.headers,
    body: r.body as BodyInit | undefined,
  });
  const contentType = res.headers.get("content-type");
  if (res.ok && contentType?.startsWith("text/event-stream")) {
    // A stream accepted (server-sent events) never ends by itself: hang up, as a client would.
    await res.body?.cancel();
    return { status: res.status, text: "", contentType };
  }
  return {
    status: res.status,
    text: await res.text(),
    contentType: res.headers.get("content-type"),
  };
}

/**
 * Asserts a refused request got a 4xx (or a 503, "retry later", which some routes document for a
 * peer that is away) with exactly the documented error shape; never a 500.
 */
export function checkErrorShape(
  r: FuzzRequest,
  res: { status: number; text: string; contentType: string | null },
): void {
  const what = `${r.method} ${r.path}`;
  assert.ok(
    res.status < 500 || res.status === 503,
    `${what} answered ${res.status}: ${res.text.slice(0, 300)}`,
  );
  if (res.status < 400 || r.method === "HEAD") return;
  assert.match(res.contentType ?? "", /^application\/json/, `${what}: error content type`);
  const body = JSON.parse(res.text);
  assert.deepEqual(Object.keys(body), ["error"], `${what}: error body ${res.text}`);
  const { status, message, ...rest } = body.error;
  assert.equal(status, res.status, `${what}: error.status`);
  assert.equal(typeof message, "string", `${what}: error.message`);
  assert.ok(message.length > 0, `${what}: empty message`);
  assert.ok(/^[A-Z]/.test(message), `${what}: message "${message}" starts with a capital`);
  assert.deepEqual(Object.keys(rest).filter((k) => k !== "issues"), [], `${what}: extra fields`);
}
