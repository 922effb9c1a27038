/**
 * The tracker in-process, through `app.request()` over an in-memory (or temp-file) Deno KV.
 * State is always checked through the log, the volume info or the KV itself, never only through
 * the answer to the request that changed it.
 */
import assert from "node:assert/strict";
import { regionsPerSegment } from "../src/dirty_bitmap.ts";
import { ManualClock } from "../src/clock.ts";
import type { LogExtent, LogPage, TrackerStatus, VolumeInfo } from "../src/schemas.ts";
import { logSegmentsPerPageMax } from "../tracker/log_reader.ts";
import { createTrackerApp } from "../tracker/service.ts";
import { kvStoreCheck } from "../tracker/store/store_probe.ts";
import type { TrackerStore } from "../tracker/store/tracker_store.ts";
import { CommitFaults } from "./support/fault_kv.ts";
import {
  type Json,
  regionBytesTest,
  trackerHarness as harness,
} from "./support/tracker_harness.ts";

const S = regionsPerSegment;
const R = regionBytesTest;

/** The dirty regions a walk of the log shows, as a sorted list of region indexes. */
function regionsOfPages(pages: LogPage[]): number[] {
  const out: number[] = [];
  for (const p of pages) {
    for (const e of p.extents) {
      for (let r = e.offset / R; r < Math.ceil((e.offset + e.length) / R); r++) out.push(r);
    }
  }
  return out;
}

/** Joins extents of consecutive pages that touch (a page boundary may split an extent). */
function joined(pages: LogPage[]): LogExtent[] {
  const out: LogExtent[] = [];
  for (const e of pages.flatMap((p) => p.extents)) {
    const last = out.at(-1);
    if (last && last.offset + last.length === e.offset) {
      last.length += e.length;
      last.firstMarkedAt = Math.min(last.firstMarkedAt, e.firstMarkedAt);
      last.lastMarkedAt = Math.max(last.lastMarkedAt, e.lastMarkedAt);
    } else out.push({ ...e });
  }
  return out;
}

/** A track response without its generation fields (tracker_generation.test.ts checks those). */
const counts = ({ volume, regionsMarked, regionsNew }: Json) => ({
  volume,
  regionsMarked,
  regionsNew,
});

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

Deno.test("marking unaligned extents marks every region they touch, across segments", async () => {
  const h = await harness();
  try {
    const size = 3 * S * R + 300; // last region is partial: 300 bytes
    await h.register("db0", size);
    const res = await h.track("db0", [
      { offset: 100, length: 1000 }, // regions 0..2
      { offset: (S - 1) * R + 10, length: 600 }, // regions 1023, 1024: crosses a segment boundary
      { offset: size - 1, length: 1 }, // the partial last region 3072
      { offset: 200, length: 10 }, // inside region 0 again: counted once
    ]);
    assert.deepEqual(counts(res), { volume: "db0", regionsMarked: 6, regionsNew: 6 });
    const [page] = await h.logAll("db0");
    assert.deepEqual(page.extents.map((e) => [e.offset, e.length]), [
      [0, 3 * R],
      [(S - 1) * R, 2 * R],
      [3 * S * R, 300],
    ]);
    const info = (await h.req("GET", "/v1/volumes/db0")).json as VolumeInfo;
    assert.equal(info.dirtyRegions, 6);
    assert.equal(info.dirtyBytes, 5 * R + 300);
    const again = await h.track("db0", [{ offset: 0, length: 2 * R + 1 }]);
    assert.deepEqual(counts(again), { volume: "db0", regionsMarked: 3, regionsNew: 0 });
  } finally {
    await h.close();
  }
});

Deno.test("a dirty region keeps its first mark time and moves its last", async () => {
  const h = await harness();
  try {
    await h.register("db0", 64 * R);
    const t0 = h.clock.now();
    await h.track("db0", [{ offset: 5 * R, length: 1 }]);
    h.clock.advance(1000);
    const t1 = h.clock.now();
    await h.track("db0", [{ offset: 5 * R, length: 2 * R }]); // regions 5 and 6
    await h.track("db0", [{ offset: 20 * R, length: 1 }], t0 - 500); // the host's time is used
    const [page] = await h.logAll("db0");
    assert.deepEqual(page.extents, [
      { offset: 5 * R, length: 2 * R, firstMarkedAt: t0, lastMarkedAt: t1 },
      { offset: 20 * R, length: R, firstMarkedAt: t0 - 500, lastMarkedAt: t0 - 500 },
    ]);
    const info = (await h.req("GET", "/v1/volumes/db0")).json as VolumeInfo;
    assert.equal(info.oldestMarkAt, t0 - 500);

    const since = async (q: string) => regionsOfPages(await h.logAll("db0", q));
    assert.deepEqual(await since(`since=${t1}`), [5, 6]);
    assert.deepEqual(await since(`until=${t0 - 1}`), [20]);
  } finally {
    await h.close();
  }
});

Deno.test("since keeps regions last marked at or after it, until those first marked by it", async () => {
  const h = await harness();
  try {
    await h.register("db0", 64 * R);
    const t0 = h.clock.now();
    const t1 = t0 + 1000;
    const t2 = t0 + 2000;
    await h.track("db0", [{ offset: 1 * R, length: 2 * R }], t0); // A = 1, B = 2
    await h.track("db0", [{ offset: 2 * R, length: 2 * R }], t1); // B again, C = 3
    await h.track("db0", [{ offset: 4 * R, length: 1 }], t2); // D = 4
    const extents = async (q: string) =>
      (await h.logAll("db0", q)).flatMap((p) => p.extents).map((e) => [
        e.offset / R,
        e.length / R,
        e.firstMarkedAt,
        e.lastMarkedAt,
      ]);
    assert.deepEqual(await extents(""), [[1, 4, t0, t2]]);
    assert.deepEqual(await extents(`since=${t1}`), [[2, 3, t0, t2]]);
    assert.deepEqual(await extents(`until=${t0}`), [[1, 2, t0, t1]]);
    assert.deepEqual(await extents(`since=${t1}&until=${t1}`), [[2, 2, t0, t1]]);
    const iso = encodeURIComponent(new Date(t2).toISOString());
    assert.deepEqual(await extents(`since=${iso}`), [[4, 1, t2, t2]]);
    assert.deepEqual(await extents(`since=${t2 + 1}`), []);
  } finally {
    await h.close();
  }
});

Deno.test("the log merges adjacent regions and pages by extent count across segments", async (t) => {
  const h = await harness();
  try {
    await h.register("db0", 4 * S * R);
    const dirty = [
      ...range(S - 4, S + 6), // crosses segments 0 → 1
      2000,
      ...range(2 * S - 1, 2 * S + 2), // crosses segments 1 → 2
      ...range(3000, 3010).filter((r) => r % 2 === 0), // five singletons
      4 * S - 1, // the last region of the volume
    ];
    h.clock.advance(10);
    for (const r of dirty) await h.track("db0", [{ offset: r * R, length: 1 }]);
    const [whole] = await h.logAll("db0", "limit=1000");
    assert.equal(whole.nextCursor, null);
    assert.deepEqual(whole.extents.map((e) => [e.offset / R, e.length / R]), [
      [S - 4, 10],
      [2000, 1],
      [2 * S - 1, 3],
      [3000, 1],
      [3002, 1],
      [3004, 1],
      [3006, 1],
      [3008, 1],
      [4 * S - 1, 1],
    ]);
    for (const limit of [1, 2, 3, 4, 8]) {
      await t.step(`limit ${limit}`, async () => {
        const pages = await h.logAll("db0", `limit=${limit}`);
        assert.equal(pages.length, Math.ceil(whole.extents.length / limit));
        for (const p of pages) {
          assert.ok(p.extents.length <= limit, `a page holds ${p.extents.length} > ${limit}`);
          assert.equal(p.token, pages[0].token);
        }
        assert.deepEqual(pages.flatMap((p) => p.extents), whole.extents);
        assert.deepEqual(regionsOfPages(pages), dirty);
      });
    }
    // A walk keeps its first token even when marks land between its pages.
    const first = (await h.req("GET", "/v1/volumes/db0/log?limit=2")).json as LogPage;
    await h.track("db0", [{ offset: 10 * R, length: 1 }]);
    const second = (await h.req("GET", `/v1/volumes/db0/log?cursor=${first.nextCursor}`))
      .json as LogPage;
    assert.equal(second.token, first.token);
    const fresh = (await h.req("GET", "/v1/volumes/db0/log")).json as LogPage;
    assert.equal(Number(fresh.token), Number(first.token) + 1);
  } finally {
    await h.close();
  }
});

Deno.test("a run longer than a page's segment bound is split there and committed in chunks", async () => {
  const h = await harness();
  try {
    const segments = logSegmentsPerPageMax + 6;
    await h.register("big", segments * S * R);
    const before = h.store.stats.atomics;
    // Every region dirty: ~24.7 KiB a segment, so 800 KiB atomics must split the commit.
    const res = await h.track("big", [{ offset: 0, length: segments * S * R }]);
    assert.equal(res.regionsNew, segments * S);
    assert.ok(h.store.stats.atomics - before >= 3, `${h.store.stats.atomics - before} atomics`);
    const pages = await h.logAll("big", "limit=100");
    assert.equal(pages.length, 2);
    assert.deepEqual(pages[0].extents.map((e) => [e.offset, e.length]), [
      [0, logSegmentsPerPageMax * S * R],
    ]);
    assert.deepEqual(joined(pages).map((e) => [e.offset, e.length]), [[0, segments * S * R]]);
    const info = (await h.req("GET", "/v1/volumes/big")).json as VolumeInfo;
    assert.equal(info.dirtyRegions, segments * S);
    const cleared = await h.req("POST", "/v1/volumes/big/clear", { token: pages[0].token });
    assert.deepEqual(cleared.json, { regionsCleared: segments * S, regionsKept: 0 });
    assert.equal(await h.dirtyKeys(), 0);
  } finally {
    await h.close();
  }
});

Deno.test("one command touching more segments than one atomic may hold is chunked", async () => {
  const h = await harness();
  try {
    const segments = 600; // 1200 segment mutations > 1000 a Deno KV atomic allows
    await h.register("sparse", segments * S * R);
    const before = h.store.stats.atomics;
    const extents = range(0, segments).map((s) => ({ offset: (s * S + 7) * R, length: 1 }));
    const res = await h.track("sparse", extents);
    assert.equal(res.regionsNew, segments);
    assert.ok(h.store.stats.atomics - before >= 2, `${h.store.stats.atomics - before} atomics`);
    const pages = await h.logAll("sparse");
    assert.deepEqual(regionsOfPages(pages), range(0, segments).map((s) => s * S + 7));
    assert.equal(await h.dirtyKeys(), 2 * segments);
  } finally {
    await h.close();
  }
});

Deno.test("clear keeps regions marked again after the log's token", async () => {
  const h = await harness();
  try {
    await h.register("db0", 4 * S * R);
    await h.track("db0", [{ offset: 0, length: 10 * R }]); // regions 0..9
    const [page] = await h.logAll("db0");
    h.clock.advance(100);
    await h.track("db0", [{ offset: 3 * R, length: 1 }, { offset: 20 * R, length: 1 }]);
    const res = await h.req("POST", "/v1/volumes/db0/clear", { token: page.token });
    assert.equal(res.status, 200);
    assert.deepEqual(res.json, { regionsCleared: 9, regionsKept: 2 });
    const [after] = await h.logAll("db0");
    assert.deepEqual(regionsOfPages([after]), [3, 20]);
    // Region 3 was cleared by nobody: its first mark time is the original one.
    assert.equal(after.extents[0].firstMarkedAt, page.extents[0].firstMarkedAt);

    const second = await h.req("POST", "/v1/volumes/db0/clear", { token: after.token });
    assert.deepEqual(second.json, { regionsCleared: 2, regionsKept: 0 });
    assert.equal(((await h.req("GET", "/v1/volumes/db0")).json as VolumeInfo).dirtyRegions, 0);
    assert.equal(await h.dirtyKeys(), 0, "empty segments leave no keys");
  } finally {
    await h.close();
  }
});

Deno.test("clear with extents clears only inside them", async () => {
  const h = await harness();
  try {
    await h.register("db0", 4 * S * R);
    await h.track("db0", [{ offset: (S - 2) * R, length: 4 * R }, {
      offset: 3 * S * R,
      length: 1,
    }]);
    const [page] = await h.logAll("db0");
    const res = await h.req("POST", "/v1/volumes/db0/clear", {
      token: page.token,
      extents: [{ offset: (S - 1) * R + 100, length: R }, { offset: 2 * S * R, length: 5 * R }],
    });
    assert.deepEqual(res.json, { regionsCleared: 2, regionsKept: 0 });
    assert.deepEqual(regionsOfPages(await h.logAll("db0")), [S - 2, S + 1, 3 * S]);
  } finally {
    await h.close();
  }
});

Deno.test("a mark sent together with a clear is never lost", async () => {
  const h = await harness();
  try {
    await h.register("db0", 4 * S * R);
    for (let round = 0; round < 20; round++) {
      await h.track("db0", [{ offset: 0, length: 8 * R }]);
      const [page] = await h.logAll("db0");
      const r = round % 8;
      const [marked, cleared] = await Promise.all([
        h.req("POST", "/v1/track", {
          volume: "db0",
          host: "h1",
          extents: [{ offset: r * R, length: 1 }],
        }),
        h.req("POST", "/v1/volumes/db0/clear", { token: page.token }),
      ]);
      assert.equal(marked.status, 200);
      assert.equal(cleared.status, 200);
      assert.deepEqual(regionsOfPages(await h.logAll("db0")), [r], `round ${round}`);
    }
  } finally {
    await h.close();
  }
});

Deno.test("a mark and a clear in the same commit batch: the mark stays, in either order", async (t) => {
  const h = await harness();
  try {
    await h.register("db0", 4 * S * R);
    await h.register("busy", 4 * S * R);
    for (const order of ["mark, clear", "clear, mark"]) {
      await t.step(order, async () => {
        await h.track("db0", [{ offset: 0, length: 8 * R }]);
        const [page] = await h.logAll("db0");
        const batches = h.store.stats.batches;
        // The first command starts a batch of its own; the next two queue while it commits.
        const busy = h.store.mark("busy", [{ offset: 0, length: 1 }], h.clock.now());
        const mark = () => h.store.mark("db0", [{ offset: 2 * R, length: 1 }], h.clock.now());
        const clear = () => h.store.clear("db0", page.token);
        const [, first, second] = await Promise.all(
          order === "mark, clear" ? [busy, mark(), clear()] : [busy, clear(), mark()],
        );
        assert.equal(h.store.stats.batches - batches, 2, "mark and clear shared one batch");
        const cleared = order === "mark, clear" ? second : first;
        assert.deepEqual(
          cleared,
          order === "mark, clear"
            ? { regionsCleared: 7, regionsKept: 1 } // the mark's sequence is newer than the token
            : { regionsCleared: 8, regionsKept: 0 }, // cleared first, then marked again
        );
        assert.deepEqual(regionsOfPages(await h.logAll("db0")), [2]);
        h.clock.advance(1);
      });
    }
  } finally {
    await h.close();
  }
});

Deno.test("clear refuses a token the log never issued, and changes nothing", async () => {
  const h = await harness();
  try {
    await h.register("db0", 4 * S * R);
    await h.track("db0", [{ offset: 0, length: R }]);
    const [page] = await h.logAll("db0");
    for (const token of [String(Number(page.token) + 1), "abc", "99999999999999999999"]) {
      const res = await h.req("POST", "/v1/volumes/db0/clear", { token });
      assert.equal(res.status, 400, token);
      assert.match(res.json.error.message, new RegExp(token));
    }
    assert.deepEqual(regionsOfPages(await h.logAll("db0")), [0]);
  } finally {
    await h.close();
  }
});

Deno.test("registration: same owner renews, conflicts answer 409 and change nothing", async () => {
  const h = await harness();
  try {
    const size = 8 * S * R;
    const reg = (extra: Record<string, unknown>) =>
      h.req("PUT", "/v1/volumes/db0", {
        sizeBytes: size,
        regionBytes: R,
        ownerHost: "h1",
        ownerUrl: "http://127.0.0.1:9001",
        leaseMs: 10_000,
        ...extra,
      });
    const first = await reg({});
    assert.equal(first.status, 200);
    assert.equal(first.json.leaseExpiresAt, h.clock.now() + 10_000);
    h.clock.advance(5000);
    const renewed = await reg({});
    assert.equal(renewed.json.leaseExpiresAt, h.clock.now() + 10_000);

    const conflicts: [string, Record<string, unknown>, RegExp][] = [
      ["another size", { sizeBytes: size + R }, new RegExp(String(size + R))],
      ["another region size", { regionBytes: 2 * R }, /1024/],
      ["another host while leased", { ownerHost: "h2" }, /"h1".*"h2"/],
    ];
    for (const [why, extra, message] of conflicts) {
      const res = await reg(extra);
      assert.equal(res.status, 409, why);
      assert.match(res.json.error.message, message, why);
    }
    const unchanged = (await h.req("GET", "/v1/volumes/db0")).json as VolumeInfo;
    assert.deepEqual(unchanged, renewed.json);

    const taken = await reg({ ownerHost: "h2", ownerUrl: "http://127.0.0.1:9002", takeover: true });
    assert.equal(taken.status, 200);
    assert.equal(taken.json.ownerHost, "h2");
    h.clock.advance(10_001);
    const back = await reg({}); // h2's lease expired: h1 may take it without takeover
    assert.equal(back.status, 200);
    assert.equal(back.json.ownerHost, "h1");
    const list = (await h.req("GET", "/v1/volumes")).json.volumes as VolumeInfo[];
    assert.deepEqual(list.map((v) => [v.name, v.ownerHost]), [["db0", "h1"]]);
  } finally {
    await h.close();
  }
});

Deno.test("bad input answers 400 naming the value and changes nothing", async (t) => {
  const h = await harness();
  try {
    const size = 2 * S * R;
    await h.register("db0", size);
    const track = (extents: unknown, volume: unknown = "db0") => ({ volume, host: "h1", extents });
    const cases: [string, string, string, unknown, string][] = [
      ["malformed JSON", "POST", "/v1/track", '{"volume": "db0", "extents": [', "Malformed JSON"],
      ["negative offset", "POST", "/v1/track", track([{ offset: -5, length: 1 }]), "-5"],
      [
        "huge offset",
        "POST",
        "/v1/track",
        track([{ offset: 2 ** 60, length: 1 }]),
        "1152921504606847000",
      ],
      ["fractional length", "POST", "/v1/track", track([{ offset: 0, length: 1.5 }]), "1.5"],
      [
        "zero length",
        "POST",
        "/v1/track",
        track([{ offset: 0, length: 0 }]),
        "extents.0.length = 0",
      ],
      ["no extents", "POST", "/v1/track", track([]), "extents = []"],
      [
        "extent past the end, after a good one",
        "POST",
        "/v1/track",
        track([{ offset: 0, length: R }, { offset: size - 10, length: 20 }]),
        `${size - 10}+20`,
      ],
      ["name ../x", "POST", "/v1/track", track([{ offset: 0, length: 1 }], "../x"), '"../x"'],
      ["name a/b", "POST", "/v1/track", track([{ offset: 0, length: 1 }], "a/b"), '"a/b"'],
      ["name A", "POST", "/v1/track", track([{ offset: 0, length: 1 }], "A"), '"A"'],
      ["path name ../x", "GET", "/v1/volumes/..%2Fx", undefined, '"../x"'],
      ["path name a/b", "PUT", "/v1/volumes/a%2Fb", {
        sizeBytes: R,
        ownerHost: "h1",
        ownerUrl: "http://x",
      }, '"a/b"'],
      ["path name A", "GET", "/v1/volumes/A/log", undefined, '"A"'],
      ["region size not a power of two", "PUT", "/v1/volumes/db1", {
        sizeBytes: R,
        regionBytes: 1000,
        ownerHost: "h1",
        ownerUrl: "http://x",
      }, "1000"],
      ["too many regions", "PUT", "/v1/volumes/db1", {
        sizeBytes: 2 ** 52,
        regionBytes: R,
        ownerHost: "h1",
        ownerUrl: "http://x",
      }, String(2 ** 52)],
      ["bad cursor", "GET", "/v1/volumes/db0/log?cursor=abc", undefined, '"abc"'],
      ["cursor from the future", "GET", "/v1/volumes/db0/log?cursor=7:0", undefined, '"7:0"'],
      ["bad limit", "GET", "/v1/volumes/db0/log?limit=0", undefined, "limit"],
      ["clear past the end", "POST", "/v1/volumes/db0/clear", {
        token: "0",
        extents: [{ offset: size, length: 1 }],
      }, `${size}+1`],
    ];
    for (const [why, method, path, body, named] of cases) {
      await t.step(why, async () => {
        const res = await h.req(method, path, body);
        assert.equal(res.status, 400, JSON.stringify(res.json));
        assert.ok(
          res.json.error.message.includes(named),
          `"${res.json.error.message}" does not name ${named}`,
        );
      });
    }
    const info = (await h.req("GET", "/v1/volumes/db0")).json as VolumeInfo;
    assert.equal(info.dirtyRegions, 0);
    assert.equal(await h.dirtyKeys(), 0);
    const list = (await h.req("GET", "/v1/volumes")).json.volumes as VolumeInfo[];
    assert.deepEqual(list.map((v) => v.name), ["db0"]);
  } finally {
    await h.close();
  }
});

Deno.test("unknown volumes answer 404", async () => {
  const h = await harness();
  try {
    const answers = [
      await h.req("POST", "/v1/track", {
        volume: "nope",
        host: "h1",
        extents: [{ offset: 0, length: 1 }],
      }),
      await h.req("GET", "/v1/volumes/nope"),
      await h.req("GET", "/v1/volumes/nope/log"),
      await h.req("POST", "/v1/volumes/nope/clear", { token: "0" }),
    ];
    for (const res of answers) {
      assert.equal(res.status, 404);
      assert.match(res.json.error.message, /"nope"/);
    }
    assert.deepEqual((await h.req("GET", "/v1/volumes")).json, { volumes: [] });
  } finally {
    await h.close();
  }
});

Deno.test("a body over the bound answers 413", async () => {
  const h = await harness();
  try {
    await h.register("db0", S * R);
    const huge = JSON.stringify({
      volume: "db0",
      host: "h1",
      extents: [{ offset: 0, length: 1 }],
      pad: "x".repeat(2 * 1024 * 1024),
    });
    const res = await h.req("POST", "/v1/track", huge);
    assert.equal(res.status, 413);
    assert.equal(await h.dirtyKeys(), 0);
  } finally {
    await h.close();
  }
});

Deno.test("2000 concurrent tracking commands are all kept, in far fewer atomics", async () => {
  const h = await harness();
  try {
    const requests = 2000;
    await h.register("db0", 8 * S * R);
    const before = { ...h.store.stats };
    const answers = await Promise.all(
      range(0, requests).map((i) =>
        h.req("POST", "/v1/track", {
          volume: "db0",
          host: "h1",
          extents: [{ offset: i * 3 * R + 1, length: 1 }],
        })
      ),
    );
    for (const a of answers) {
      assert.deepEqual(counts(a.json), { volume: "db0", regionsMarked: 1, regionsNew: 1 });
    }
    const atomics = h.store.stats.atomics - before.atomics;
    const batches = h.store.stats.batches - before.batches;
    assert.equal(h.store.stats.batchOps - before.batchOps, requests);
    assert.ok(atomics < requests, `${atomics} atomics for ${requests} commands`);
    assert.ok(batches < requests, `${batches} batches for ${requests} commands`);
    assert.deepEqual(regionsOfPages(await h.logAll("db0")), range(0, requests).map((i) => i * 3));

    const metrics = (await h.req("GET", "/metrics")).json as string;
    assert.match(
      metrics,
      new RegExp(`^trackmirror_tracker_track_requests_total ${requests}$`, "m"),
    );
    assert.match(
      metrics,
      new RegExp(`^trackmirror_tracker_kv_atomics_total ${h.store.stats.atomics}$`, "m"),
    );
    assert.match(
      metrics,
      new RegExp(`^trackmirror_tracker_commit_batches_total ${h.store.stats.batches}$`, "m"),
    );
  } finally {
    await h.close();
  }
});

Deno.test("a failed commit fails exactly its batch's commands; the others are kept", async () => {
  const faults = new CommitFaults();
  const h = await harness({ faults });
  try {
    await h.register("db0", 8 * S * R);
    await h.track("db0", [{ offset: 0, length: 1 }]); // region 0 cached as committed
    faults.failNext(1);
    const regions = range(1, 61).map((i) => i * 37);
    const answers = await Promise.all(
      regions.map((r) =>
        h.req("POST", "/v1/track", {
          volume: "db0",
          host: "h1",
          extents: [{ offset: r * R, length: 1 }],
        })
      ),
    );
    const failed = regions.filter((_, i) => answers[i].status === 500);
    const kept = regions.filter((_, i) => answers[i].status === 200);
    assert.ok(failed.length >= 1, "the injected failure reached no command");
    assert.equal(failed.length + kept.length, regions.length);
    for (const a of answers.filter((a) => a.status === 500)) {
      assert.match(a.json.error.message, /Injected commit failure/);
    }
    // The failed commit wrote nothing; everything acknowledged is there.
    assert.deepEqual(regionsOfPages(await h.logAll("db0")), [0, ...kept]);
    for (const r of failed) await h.track("db0", [{ offset: r * R, length: 1 }]);
    assert.deepEqual(regionsOfPages(await h.logAll("db0")), [0, ...regions]);

    const [page] = await h.logAll("db0");
    faults.failNext(1);
    const clear = await h.req("POST", "/v1/volumes/db0/clear", { token: page.token });
    assert.equal(clear.status, 500);
    assert.equal(((await h.req("GET", "/v1/volumes/db0")).json as VolumeInfo).dirtyRegions, 61);
  } finally {
    await h.close();
  }
});

Deno.test("a failed commit's marks do not come back with the segment's next commit", async () => {
  const faults = new CommitFaults();
  const h = await harness({ faults });
  try {
    await h.register("db0", 2 * S * R);
    // Committed: the tracker keeps segment 0 cached (stored and decoded) for the next mark.
    await h.track("db0", [{ offset: 0, length: 1 }]);
    faults.failNext(1);
    assert.equal(
      (await h.req("POST", "/v1/track", {
        volume: "db0",
        host: "h1",
        extents: [{ offset: 5 * R, length: 1 }],
      })).status,
      500,
    );
    await h.track("db0", [{ offset: 9 * R, length: 1 }]);
    await h.track("db0", [{ offset: S * R, length: 1 }]); // another segment, for contrast
    assert.deepEqual(regionsOfPages(await h.logAll("db0")), [0, 9, S]);
    assert.equal((await h.info("db0")).dirtyRegions, 3);
  } finally {
    await h.close();
  }
});

Deno.test("marks and the sequence survive reopening the KV", async () => {
  const dir = await Deno.makeTempDir();
  try {
    let token: string;
    {
      const h = await harness({ path: `${dir}/t.kv` });
      await h.register("db0", 4 * S * R);
      await h.track("db0", [{ offset: 0, length: 3 * R }]);
      token = (await h.logAll("db0"))[0].token;
      await h.close();
    }
    const h = await harness({ path: `${dir}/t.kv` });
    try {
      assert.deepEqual(regionsOfPages(await h.logAll("db0")), [0, 1, 2]);
      // A mark after the restart must be newer than the token issued before it.
      await h.track("db0", [{ offset: R, length: 1 }]);
      const res = await h.req("POST", "/v1/volumes/db0/clear", { token });
      assert.deepEqual(res.json, { regionsCleared: 2, regionsKept: 1 });
      assert.deepEqual(regionsOfPages(await h.logAll("db0")), [1]);
    } finally {
      await h.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a bearer token guards every route but /healthz", async () => {
  const h = await harness({ token: "s3cret" });
  try {
    assert.equal((await h.req("GET", "/healthz")).status, 200);
    assert.equal((await h.req("GET", "/v1/volumes")).status, 401);
    const res = await h.app.request("/v1/volumes", { headers: { authorization: "Bearer s3cret" } });
    assert.equal(res.status, 200);
    await res.body?.cancel();
  } finally {
    await h.close();
  }
});

Deno.test("after close, tracking commands are refused with 503", async () => {
  const h = await harness();
  try {
    await h.register("db0", S * R);
    await h.store.close();
    const res = await h.req("POST", "/v1/track", {
      volume: "db0",
      host: "h1",
      extents: [{ offset: 0, length: 1 }],
    });
    assert.equal(res.status, 503);
  } finally {
    await h.close();
  }
});

/**
 * A Deno KV whose reads can be made to hang (a store without quorum), counting the reads that
 * came while it hung; `answer()` lets them through.
 */
function hangingKv(kv: Deno.Kv) {
  let gate: PromiseWithResolvers<void> | null = null;
  const state = { readsWhileHanging: 0 };
  const wait = async () => {
    if (gate === null) return;
    state.readsWhileHanging++;
    await gate.promise;
  };
  const store: TrackerStore = {
    get: async (key) => (await wait(), kv.get(key)),
    getMany: (async (keys: Deno.KvKey[]) => (await wait(), kv.getMany(keys))) as TrackerStore[
      "getMany"
    ],
    list: (selector, options) =>
      (async function* () {
        await wait();
        yield* kv.list(selector, options);
      })() as AsyncIterableIterator<never>,
    set: (key, value) => kv.set(key, value),
    atomic: () => kv.atomic(),
  };
  return {
    store,
    state,
    hang: () => gate = Promise.withResolvers<void>(),
    answer: () => {
      gate?.resolve();
      gate = null;
    },
  };
}

Deno.test("GET /v1/status answers from the store probe: a store that hangs is not ok and is not asked", async () => {
  const kv = await Deno.openKv(":memory:");
  const clock = new ManualClock();
  const hanging = hangingKv(kv);
  const service = createTrackerApp({
    kv: hanging.store,
    clock,
    // Probed by the test (probeNow), not by the background timer.
    storeProbe: {
      kind: "kv",
      check: kvStoreCheck(hanging.store),
      intervalMs: 3_600_000,
      timeoutMs: 500,
    },
  });
  const status = async () => {
    const res = await service.app.request("/v1/status");
    assert.equal(res.status, 200);
    return await res.json() as TrackerStatus;
  };
  try {
    const reg = await service.app.request("/v1/volumes/vol0", {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        sizeBytes: 1 << 20,
        regionBytes: R,
        ownerHost: "h1",
        ownerUrl: "http://127.0.0.1:9001",
      }),
    });
    assert.equal(reg.status, 200);
    assert.equal((await service.storeProbe!.probeNow()).ok, true);
    const listedAt = clock.now();
    const ok = await status();
    assert.equal(ok.store?.ok, true);
    assert.equal(ok.store?.kind, "kv");
    assert.equal(ok.volumes, 1);
    assert.equal(ok.volumesAt, listedAt, "read by the probe after its check");

    hanging.hang();
    clock.advance(5000);
    const lost = await service.storeProbe!.probeNow();
    assert.equal(lost.ok, false, "a check that does not answer in time is not ok");
    assert.match(lost.error ?? "", /no answer within 1000 ms/);
    assert.equal(lost.checkedAt, clock.now());
    const readsByProbe = hanging.state.readsWhileHanging;

    const down = await status();
    assert.equal(down.store?.ok, false);
    assert.equal(down.store?.error, lost.error);
    assert.equal(down.volumes, 1, "the counts last read");
    assert.equal(down.volumesAt, listedAt, "and when they were read");
    assert.equal(down.now, clock.now());
    assert.equal(hanging.state.readsWhileHanging, readsByProbe, "the route did not ask the store");

    // The first check still hangs: no second one is started, and the store stays not ok.
    const still = await service.storeProbe!.probeNow();
    assert.equal(still.ok, false);
    assert.match(still.error ?? "", /has not answered/);
    assert.equal(hanging.state.readsWhileHanging, readsByProbe);

    hanging.answer();
    // The released check finishes its real KV reads first (async ops: a loaded machine may take
    // longer than one timer tick); until then a probe says the first check has not answered.
    const backBy = Date.now() + 5000;
    let again = await service.storeProbe!.probeNow();
    while (!again.ok && Date.now() < backBy) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      again = await service.storeProbe!.probeNow();
    }
    assert.equal(again.ok, true, `the store answers again, yet the probe says: ${again.error}`);
    const back = await status();
    assert.equal(back.store?.ok, true);
    assert.equal(back.volumesAt, clock.now());
  } finally {
    hanging.answer();
    await service.close();
    kv.close();
  }
});
