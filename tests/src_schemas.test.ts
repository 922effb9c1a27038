import assert from "node:assert/strict";
import { regionBytesDefault } from "../src/extent.ts";
import {
  checkName,
  clearRequest,
  hostId,
  logQuery,
  timeMs,
  trackExtentsMax,
  trackRequest,
  volumeName,
  volumeRegistration,
} from "../src/schemas.ts";
import { describeIssues } from "../src/validate.ts";

const goodNames = ["vol0", "a.b-c_d", "0", "db-01", "a..b", "x".repeat(64)];
const badNames = [
  "",
  "../x",
  "a/b",
  "A",
  "Vol0",
  ".hidden",
  "-dash",
  "_under",
  "x".repeat(65),
  "a b",
  "vol0\n",
  "völ",
  "a\\b",
];

Deno.test("volume names that are safe file names are accepted", async (t) => {
  for (const name of goodNames) {
    await t.step(JSON.stringify(name), () => {
      assert.equal(volumeName.parse(name), name);
      assert.equal(hostId.parse(name), name);
      assert.equal(checkName("Volume", name), name);
    });
  }
});

Deno.test("volume names that could escape a directory or clash are rejected", async (t) => {
  for (const name of badNames) {
    await t.step(JSON.stringify(name), () => {
      assert.equal(volumeName.safeParse(name).success, false);
    });
  }
});

Deno.test("checkName rejects bad names, '.' and '..' included, naming the kind and the value", async (t) => {
  for (const name of [...badNames, ".", ".."]) {
    await t.step(JSON.stringify(name), () => {
      assert.throws(
        () => checkName("Host", name),
        new RangeError(
          `Host name "${name}" is invalid: it must match ^[a-z0-9][a-z0-9._-]{0,63}$`,
        ),
      );
    });
  }
});

const extent = { offset: 4096, length: 512 };
const track = { volume: "db0", host: "h1", extents: [extent] };

Deno.test("trackRequest accepts extents within bounds and an optional time", async (t) => {
  const cases: [string, unknown][] = [
    ["one extent", track],
    ["an unaligned extent", { ...track, extents: [{ offset: 1, length: 3 }] }],
    ["the largest safe offset", {
      ...track,
      extents: [{ offset: Number.MAX_SAFE_INTEGER, length: 1 }],
    }],
    [`${trackExtentsMax} extents`, { ...track, extents: Array(trackExtentsMax).fill(extent) }],
    ["a time", { ...track, time: 1_700_000_000_000 }],
  ];
  for (const [name, body] of cases) {
    await t.step(name, () => assert.deepEqual(trackRequest.parse(body), body));
  }
});

Deno.test("trackRequest rejects out-of-bound extents, naming the field and the value", async (t) => {
  const cases: [string, unknown, RegExp][] = [
    ["no extents", { ...track, extents: [] }, /^extents = \[\]: /],
    [
      `${trackExtentsMax + 1} extents`,
      { ...track, extents: Array(trackExtentsMax + 1).fill(extent) },
      /^extents = \[/,
    ],
    [
      "a negative offset",
      { ...track, extents: [{ offset: -5, length: 1 }] },
      /^extents\.0\.offset = -5: /,
    ],
    [
      "a fractional offset",
      { ...track, extents: [{ offset: 1.5, length: 1 }] },
      /^extents\.0\.offset = 1\.5: /,
    ],
    [
      "an offset of 2^53",
      { ...track, extents: [extent, { offset: 2 ** 53, length: 1 }] },
      /^extents\.1\.offset = 9007199254740992: /,
    ],
    [
      "a zero length",
      { ...track, extents: [{ offset: 0, length: 0 }] },
      /^extents\.0\.length = 0: /,
    ],
    [
      "a string offset",
      { ...track, extents: [{ offset: "0", length: 1 }] },
      /^extents\.0\.offset = "0": /,
    ],
    ["a missing volume", { host: "h1", extents: [extent] }, /^volume = missing: /],
    ["a bad host", { ...track, host: "../h" }, /^host = "\.\.\/h": Must match/],
    ["a negative time", { ...track, time: -1 }, /^time = -1: /],
  ];
  for (const [name, body, message] of cases) {
    await t.step(name, () => {
      const result = trackRequest.safeParse(body);
      assert.equal(result.success, false);
      assert.match(describeIssues(result.error!.issues, body), message);
    });
  }
});

const registration = { sizeBytes: 1 << 30, ownerHost: "h1", ownerUrl: "http://127.0.0.1:7000" };

Deno.test("volumeRegistration fills in the default region size, lease and takeover", () => {
  assert.deepEqual(volumeRegistration.parse(registration), {
    ...registration,
    regionBytes: regionBytesDefault,
    leaseMs: 30_000,
    takeover: false,
  });
});

Deno.test("volumeRegistration accepts only power-of-two region sizes from 512 B to 64 MiB", async (t) => {
  const cases: [number, boolean][] = [
    [512, true],
    [4096, true],
    [1 << 20, true],
    [64 << 20, true],
    [256, false],
    [3000, false],
    [65536 + 512, false],
    [128 << 20, false],
    [0, false],
    [-4096, false],
    [4096.5, false],
  ];
  for (const [regionBytes, ok] of cases) {
    await t.step(`${regionBytes} ${ok ? "accepted" : "rejected"}`, () => {
      const result = volumeRegistration.safeParse({ ...registration, regionBytes });
      assert.equal(result.success, ok);
      if (ok) assert.equal(result.data!.regionBytes, regionBytes);
    });
  }
});

Deno.test("volumeRegistration takes only an http(s) owner URL", async (t) => {
  const cases: [string, boolean][] = [
    ["http://127.0.0.1:7000", true],
    ["https://host-a.example:8443/agent", true],
    ["http://localhost:7000", true],
    ["http://[::1]:7000", true],
    ["file:///etc/passwd", false],
    ["ftp://host/x", false],
    ["javascript:alert(1)", false],
    ["127.0.0.1:7000", false],
    ["", false],
  ];
  for (const [ownerUrl, ok] of cases) {
    await t.step(`${JSON.stringify(ownerUrl)} ${ok ? "accepted" : "rejected"}`, () => {
      assert.equal(volumeRegistration.safeParse({ ...registration, ownerUrl }).success, ok);
    });
  }
});

Deno.test("volumeRegistration bounds the size and the lease", async (t) => {
  const cases: [string, Record<string, unknown>][] = [
    ["size 0", { sizeBytes: 0 }],
    ["size 2^53", { sizeBytes: 2 ** 53 }],
    ["a lease under one second", { leaseMs: 999 }],
    ["a lease over a day", { leaseMs: 24 * 3600 * 1000 + 1 }],
    ["a bad owner host", { ownerHost: "H1" }],
  ];
  for (const [name, change] of cases) {
    await t.step(name, () => {
      assert.equal(volumeRegistration.safeParse({ ...registration, ...change }).success, false);
    });
  }
});

Deno.test("timeMs takes milliseconds as a number, a digit string or an ISO-8601 date", async (t) => {
  const cases: [string, unknown, number][] = [
    ["a number", 1_700_000_000_000, 1_700_000_000_000],
    ["zero", 0, 0],
    ["a digit string (a query parameter)", "1700000000000", 1_700_000_000_000],
    ["an ISO date in UTC", "2024-01-01T00:00:00Z", Date.UTC(2024, 0, 1)],
    ["an ISO date with milliseconds", "2024-01-01T00:00:00.250Z", Date.UTC(2024, 0, 1) + 250],
    ["an ISO date with an offset", "2024-01-01T02:00:00+02:00", Date.UTC(2024, 0, 1)],
  ];
  for (const [name, input, ms] of cases) {
    await t.step(name, () => assert.equal(timeMs.parse(input), ms));
  }
});

Deno.test("timeMs rejects negative, fractional, unsafe and unparseable times", async (t) => {
  const cases: unknown[] = [
    -1,
    1.5,
    2 ** 53,
    "-1",
    "1.5",
    "",
    "99999999999999999999",
    "yesterday",
    "2024-02-30T00:00:00Z",
    "2024-01-01T00:00:00",
    null,
  ];
  for (const input of cases) {
    await t.step(JSON.stringify(input), () => assert.equal(timeMs.safeParse(input).success, false));
  }
});

Deno.test("logQuery coerces its string parameters and bounds the page size", async (t) => {
  await t.step("defaults", () => assert.deepEqual(logQuery.parse({}), { limit: 10_000 }));
  await t.step("strings from a URL", () => {
    assert.deepEqual(
      logQuery.parse({ since: "5", until: "2024-01-01T00:00:00Z", cursor: "3:17", limit: "50" }),
      { since: 5, until: Date.UTC(2024, 0, 1), cursor: "3:17", limit: 50 },
    );
  });
  for (const bad of [{ limit: "0" }, { limit: "100001" }, { limit: "ten" }, { cursor: "3" }]) {
    await t.step(`${JSON.stringify(bad)} rejected`, () => {
      assert.equal(logQuery.safeParse(bad).success, false);
    });
  }
});

Deno.test("clearRequest needs a token from the log", () => {
  assert.deepEqual(clearRequest.parse({ token: "12" }), { token: "12" });
  const result = clearRequest.safeParse({ token: "abc" });
  assert.equal(result.success, false);
  assert.equal(
    describeIssues(result.error!.issues, { token: "abc" }),
    `token = "abc": Must be a token returned by the log`,
  );
});

Deno.test("describeIssues names the first bad value, counts the rest and stays short", async (t) => {
  await t.step("several issues", () => {
    const body = { volume: "A", host: "B", extents: [] };
    const result = trackRequest.safeParse(body);
    assert.match(describeIssues(result.error!.issues, body), /^volume = "A": .* \(and 2 more\)$/);
  });
  await t.step("a long value is cut", () => {
    const body = { ...track, volume: "v".repeat(500) };
    const message = describeIssues(trackRequest.safeParse(body).error!.issues, body);
    assert.ok(message.startsWith(`volume = "${"v".repeat(79)}:`), message);
  });
  await t.step("a bad body as a whole", () => {
    const message = describeIssues(trackRequest.safeParse(42).error!.issues, 42);
    assert.match(message, /^body = 42: /);
  });
  await t.step("no issues", () => {
    assert.equal(describeIssues([], {}), "Invalid input");
  });
});
