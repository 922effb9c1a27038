/**
 * Activity marks at the tracker (issue 4): recorded, retired and promoted per host, kept apart from
 * dirty marks, through `app.request()` over an in-memory or temp-file Deno KV, and through the real
 * process killed with SIGKILL. State is checked in the KV itself, the log and the volume info, never
 * only through the answer to the request that changed it.
 */
import assert from "node:assert/strict";
import { regionsPerSegment, segmentBytes, testBit } from "../src/dirty_bitmap.ts";
import type { ActivityPage, LogPage, VolumeInfo } from "../src/schemas.ts";
import { activityHostsMax } from "../tracker/activity_state.ts";
import { activitySegmentsPerPageMax } from "../tracker/activity_reader.ts";
import { TrackerClient } from "../tracker/client.ts";
import { CommitFaults } from "./support/fault_kv.ts";
import { startService } from "../harness/service_process.ts";
import {
  regionBytesTest,
  type TrackerHarness as Harness,
  trackerHarness as harness,
} from "./support/tracker_harness.ts";

const S = regionsPerSegment;
const R = regionBytesTest;

/** Dirty regions as a walk of the log shows them, and the first page's token. */
async function log(
  h: Harness,
  volume: string,
): Promise<{ regions: number[]; token: string; pages: LogPage[] }> {
  const pages = await h.logAll(volume);
  return {
    regions: regionsOfExtents(pages.flatMap((p) => p.extents)),
    token: pages[0].token,
    pages,
  };
}

/** Region indexes the extents cover, sorted. */
function regionsOfExtents(extents: { offset: number; length: number }[]): number[] {
  const out: number[] = [];
  for (const e of extents) {
    for (let r = e.offset / R; r < Math.ceil((e.offset + e.length) / R); r++) out.push(r);
  }
  return out.sort((a, b) => a - b);
}

/** Every page of the activity walk (`query` e.g. "host=h1&limit=2"). */
async function activityPages(h: Harness, volume: string, query = ""): Promise<ActivityPage[]> {
  const pages: ActivityPage[] = [];
  let cursor: string | null = null;
  do {
    const q = [query, cursor ? `cursor=${cursor}` : ""].filter(Boolean).join("&");
    pages.push(await h.ok("GET", `/v1/volumes/${volume}/activity${q ? `?${q}` : ""}`));
    cursor = pages.at(-1)!.nextCursor;
    assert.ok(pages.length < 100_000, "activity walk does not end");
  } while (cursor);
  return pages;
}

/** Regions set in the KV under `prefix` (["dirty", vol] or ["activity", vol, host]), sorted. */
async function kvRegions(kv: Deno.Kv, prefix: Deno.KvKey): Promise<number[]> {
  const out: number[] = [];
  for await (const e of kv.list<Uint8Array>({ prefix })) {
    const bits = e.value;
    assert.equal(bits.length, segmentBytes, `${JSON.stringify(e.key)} holds ${bits.length} bytes`);
    const segment = e.key.at(-1) as number;
    let any = false;
    for (let b = 0; b < S; b++) {
      if (testBit(bits, b)) {
        out.push(segment * S + b);
        any = true;
      }
    }
    assert.ok(any, `${JSON.stringify(e.key)} is an empty segment left in KV`);
  }
  return out.sort((a, b) => a - b);
}

/** Number of keys under a prefix. */
async function keyCount(kv: Deno.Kv, prefix: Deno.KvKey): Promise<number> {
  let n = 0;
  for await (const _ of kv.list({ prefix })) n++;
  return n;
}

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

Deno.test("activity marks are kept apart from dirty marks: log, token and dirty count unchanged", async () => {
  const h = await harness();
  try {
    await h.register("db0", 4 * S * R);
    await h.ok("POST", "/v1/track", {
      volume: "db0",
      host: "h1",
      extents: [{ offset: 3 * R, length: 2 * R }],
    });
    const before = await log(h, "db0");
    const dirtyKeys = await keyCount(h.kv, ["dirty"]);
    const seq = (await h.kv.get(["seq", "db0"])).value;

    const res = await h.ok("POST", "/v1/activity", {
      volume: "db0",
      host: "h1",
      extents: [
        { offset: 100, length: 1000 }, // regions 0..2
        { offset: (S - 1) * R + 10, length: 600 }, // 1023, 1024: across a segment boundary
        { offset: 4 * R, length: 1 }, // 4: dirty as well; activity is its own record
        { offset: 200, length: 10 }, // region 0 again: counted once
      ],
    });
    assert.deepEqual(res, { volume: "db0", host: "h1", regionsMarked: 6, regionsNew: 6 });
    const again = await h.active("db0", "h1", [0, 1, 5]);
    assert.deepEqual(again, { volume: "db0", host: "h1", regionsMarked: 3, regionsNew: 1 });

    assert.deepEqual(await kvRegions(h.kv, ["activity", "db0", "h1"]), [0, 1, 2, 4, 5, S - 1, S]);
    const after = await log(h, "db0");
    assert.deepEqual(after.regions, before.regions);
    assert.deepEqual(after.regions, [3, 4]);
    assert.equal(after.token, before.token, "activity moved the mark sequence");
    assert.equal((await h.kv.get(["seq", "db0"])).value, seq);
    assert.equal(await keyCount(h.kv, ["dirty"]), dirtyKeys);
    const info = await h.info("db0");
    assert.equal(info.dirtyRegions, 2);
    assert.equal(info.activityRegions, 7);
    assert.deepEqual(info.activityByHost, { h1: 7 });

    // A clear of every dirty region leaves activity alone.
    await h.ok("POST", "/v1/volumes/db0/clear", { token: after.token });
    assert.equal((await h.info("db0")).dirtyRegions, 0);
    assert.deepEqual(await kvRegions(h.kv, ["activity", "db0", "h1"]), [0, 1, 2, 4, 5, S - 1, S]);
    assert.equal((await h.info("db0")).activityRegions, 7);
  } finally {
    await h.close();
  }
});

Deno.test("hosts' activity is separate: promoting one host's leaves the other's", async () => {
  const h = await harness();
  try {
    await h.register("db0", 4 * S * R);
    await h.active("db0", "h1", [1, 2, 3, 2 * S + 5]);
    await h.active("db0", "h2", [2, 3, 4, 3 * S]);
    assert.deepEqual((await h.info("db0")).activityByHost, { h1: 4, h2: 4 });
    assert.equal((await h.info("db0")).activityRegions, 8);

    const res = await h.ok("POST", "/v1/volumes/db0/activity/promote", { host: "h1" });
    assert.deepEqual(res, { regionsPromoted: 4 });
    assert.deepEqual((await log(h, "db0")).regions, [1, 2, 3, 2 * S + 5]);
    assert.deepEqual(await kvRegions(h.kv, ["activity", "db0", "h1"]), []);
    assert.deepEqual(await kvRegions(h.kv, ["activity", "db0", "h2"]), [2, 3, 4, 3 * S]);
    const info = await h.info("db0");
    assert.deepEqual(info.activityByHost, { h2: 4 });
    assert.equal(info.activityRegions, 4);
    assert.equal(info.dirtyRegions, 4);

    // Promoting a host without activity changes nothing, not even the sequence.
    const { token } = await log(h, "db0");
    assert.deepEqual(await h.ok("POST", "/v1/volumes/db0/activity/promote", { host: "h1" }), {
      regionsPromoted: 0,
    });
    assert.equal((await log(h, "db0")).token, token);

    assert.deepEqual(await h.ok("POST", "/v1/volumes/db0/activity/promote", { host: "h2" }), {
      regionsPromoted: 4,
    });
    assert.deepEqual((await log(h, "db0")).regions, [1, 2, 3, 4, 2 * S + 5, 3 * S]);
    assert.equal(await keyCount(h.kv, ["activity"]), 0, "empty activity segments leave no keys");
    assert.deepEqual((await h.info("db0")).activityByHost, {});
  } finally {
    await h.close();
  }
});

Deno.test("retire clears only the given regions of the given host", async () => {
  const h = await harness();
  try {
    await h.register("db0", 4 * S * R);
    await h.active("db0", "h1", [...range(0, 10), S + 1]);
    await h.active("db0", "h2", [5, S + 1]);
    const res = await h.ok("POST", "/v1/volumes/db0/activity/retire", {
      host: "h1",
      extents: [{ offset: 3 * R + 100, length: 2 * R }, { offset: 2 * S * R, length: 1 }], // 3..5
    });
    assert.deepEqual(res, { regionsRetired: 3 });
    assert.deepEqual(await kvRegions(h.kv, ["activity", "db0", "h1"]), [
      0,
      1,
      2,
      6,
      7,
      8,
      9,
      S + 1,
    ]);
    assert.deepEqual(await kvRegions(h.kv, ["activity", "db0", "h2"]), [5, S + 1]);
    assert.deepEqual((await h.info("db0")).activityByHost, { h1: 8, h2: 2 });

    const twice = await h.ok("POST", "/v1/volumes/db0/activity/retire", {
      host: "h1",
      extents: [{ offset: 3 * R, length: 3 * R }],
    });
    assert.deepEqual(twice, { regionsRetired: 0 });

    // Retiring a whole segment's activity deletes its key.
    await h.ok("POST", "/v1/volumes/db0/activity/retire", {
      host: "h1",
      extents: [{ offset: S * R, length: S * R }],
    });
    assert.deepEqual(await kvRegions(h.kv, ["activity", "db0", "h1"]), [0, 1, 2, 6, 7, 8, 9]);
    assert.equal(await keyCount(h.kv, ["activity", "db0", "h1"]), 1);
    assert.deepEqual((await log(h, "db0")).regions, [], "retire made something dirty");
    assert.equal((await h.info("db0")).activityRegions, 9);
  } finally {
    await h.close();
  }
});

Deno.test("promote marks dirty newer than an earlier token: a clear with it keeps them", async () => {
  const h = await harness();
  try {
    await h.register("db0", 4 * S * R);
    const t0 = h.clock.now();
    await h.ok("POST", "/v1/track", {
      volume: "db0",
      host: "h1",
      extents: [{ offset: 0, length: 2 * R }], // regions 0, 1 dirty
    });
    await h.active("db0", "h1", [1, 10, 11]);
    const before = await log(h, "db0");
    h.clock.advance(5000);
    const t1 = h.clock.now();
    assert.deepEqual(await h.ok("POST", "/v1/volumes/db0/activity/promote", { host: "h1" }), {
      regionsPromoted: 3,
    });
    const after = await log(h, "db0");
    assert.ok(Number(after.token) > Number(before.token), `${after.token} ≤ ${before.token}`);
    assert.deepEqual(after.pages[0].extents, [
      { offset: 0, length: 2 * R, firstMarkedAt: t0, lastMarkedAt: t1 }, // 1 keeps its first mark
      { offset: 10 * R, length: 2 * R, firstMarkedAt: t1, lastMarkedAt: t1 },
    ]);
    const cleared = await h.ok("POST", "/v1/volumes/db0/clear", { token: before.token });
    assert.deepEqual(cleared, { regionsCleared: 1, regionsKept: 3 });
    assert.deepEqual((await log(h, "db0")).regions, [1, 10, 11]);
    assert.equal((await h.info("db0")).activityRegions, 0);
    const done = await h.ok("POST", "/v1/volumes/db0/clear", { token: after.token });
    assert.deepEqual(done, { regionsCleared: 3, regionsKept: 0 });
  } finally {
    await h.close();
  }
});

Deno.test("activity, retire and promote in one commit batch apply in queue order", async () => {
  const h = await harness();
  try {
    await h.register("db0", 4 * S * R);
    await h.register("busy", 4 * S * R);
    await h.active("db0", "h1", [1, 2]);
    const batches = h.store.stats.batches;
    // The first command starts a batch of its own; the rest queue while it commits.
    const [, a, r, p, b] = await Promise.all([
      h.store.mark("busy", [{ offset: 0, length: 1 }], h.clock.now()),
      h.store.recordActivity("db0", "h1", [{ offset: 5 * R, length: 1 }]),
      h.store.retireActivity("db0", "h1", [{ offset: 2 * R, length: 1 }]),
      h.store.promoteActivity("db0", "h1", h.clock.now()),
      h.store.recordActivity("db0", "h1", [{ offset: 6 * R, length: 1 }]),
    ]);
    assert.equal(h.store.stats.batches - batches, 2, "the four shared one batch");
    assert.equal(a.regionsNew, 1);
    assert.deepEqual(r, { regionsRetired: 1 });
    assert.deepEqual(p, { regionsPromoted: 2 }); // 1 and 5; 2 was retired before
    assert.equal(b.regionsNew, 1);
    assert.deepEqual((await log(h, "db0")).regions, [1, 5]);
    assert.deepEqual(await kvRegions(h.kv, ["activity", "db0", "h1"]), [6]);
    assert.deepEqual((await h.info("db0")).activityByHost, { h1: 1 });
  } finally {
    await h.close();
  }
});

Deno.test("a promote over many segments is chunked, and a failure between chunks loses no region", async () => {
  const faults = new CommitFaults();
  const h = await harness({ faults });
  try {
    const segments = 70; // fully dirty: ~24.7 KiB a segment, ~31 in an 800 KiB atomic
    await h.register("big", segments * S * R);
    await h.ok("POST", "/v1/activity", {
      volume: "big",
      host: "h1",
      extents: [{ offset: 0, length: segments * S * R }],
    });
    await h.active("big", "h2", [7]);
    const all = range(0, segments * S);
    const { token } = await log(h, "big");

    faults.failNext(1, { after: 1 }); // the first chunk (with the sequence) lands, the second does not
    const failed = await h.req("POST", "/v1/volumes/big/activity/promote", { host: "h1" });
    assert.equal(failed.status, 500, JSON.stringify(failed.json));
    assert.match(failed.json.error.message, /Injected commit failure/);
    const dirty = await kvRegions(h.kv, ["dirty", "big"]);
    const active = await kvRegions(h.kv, ["activity", "big", "h1"]);
    assert.ok(
      dirty.length > 0 && active.length > 0,
      `${dirty.length} dirty, ${active.length} active`,
    );
    // Every region is still held by one of the two records: none was cleared without being marked.
    const held = new Set([...dirty, ...active]);
    assert.equal(held.size, all.length, `${all.length - held.size} regions lost`);
    assert.deepEqual(dirty, range(0, dirty.length), "chunks land in segment order");
    // The info is reloaded from KV after the failure and agrees with it.
    const info = await h.info("big");
    assert.equal(info.dirtyRegions, dirty.length);
    assert.deepEqual(info.activityByHost, { h1: active.length, h2: 1 });

    const before = h.store.stats.atomics;
    const res = await h.ok("POST", "/v1/volumes/big/activity/promote", { host: "h1" });
    assert.deepEqual(res, { regionsPromoted: active.length });
    assert.ok(h.store.stats.atomics - before >= 2, `${h.store.stats.atomics - before} atomics`);
    assert.deepEqual(await kvRegions(h.kv, ["dirty", "big"]), all);
    assert.deepEqual(await kvRegions(h.kv, ["activity", "big", "h1"]), []);
    assert.deepEqual(await kvRegions(h.kv, ["activity", "big", "h2"]), [7]);
    // Both halves were marked after the token was issued.
    const cleared = await h.ok("POST", "/v1/volumes/big/clear", { token });
    assert.deepEqual(cleared, { regionsCleared: 0, regionsKept: all.length });
  } finally {
    await h.close();
  }
});

Deno.test("the activity walk pages by extent count and segment bound, per host or all", async (t) => {
  const h = await harness();
  try {
    const segments = activitySegmentsPerPageMax + 3;
    await h.register("db0", segments * S * R);
    const h1 = [...range(S - 2, S + 3), 2 * S + 9, ...range(0, segments).map((s) => s * S + 100)];
    const h2 = [0, 1, 5];
    for (let i = 0; i < h1.length; i += 4000) await h.active("db0", "h1", h1.slice(i, i + 4000));
    await h.active("db0", "h2", h2);
    const expected = [...new Set(h1)].sort((a, b) => a - b);

    await t.step("one host, whole", async () => {
      const pages = await activityPages(h, "db0", "host=h2");
      assert.equal(pages.length, 1);
      assert.deepEqual(pages[0].extents, [
        { offset: 0, length: 2 * R, host: "h2" },
        { offset: 5 * R, length: R, host: "h2" },
      ]);
    });
    await t.step("one host, past the segment bound", async () => {
      const pages = await activityPages(h, "db0", "host=h1");
      assert.equal(pages.length, 2, "a page reads at most activitySegmentsPerPageMax segments");
      assert.ok(pages.every((p) => p.extents.every((e) => e.host === "h1")));
      assert.deepEqual(regionsOfExtents(pages.flatMap((p) => p.extents)), expected);
    });
    await t.step("all hosts, small pages", async () => {
      for (const limit of [1, 2, 3]) {
        const pages = await activityPages(h, "db0", `limit=${limit}`);
        const extents = pages.flatMap((p) => p.extents);
        assert.ok(pages.every((p) => p.extents.length <= limit));
        assert.deepEqual(regionsOfExtents(extents.filter((e) => e.host === "h1")), expected);
        assert.deepEqual(regionsOfExtents(extents.filter((e) => e.host === "h2")), h2);
        assert.deepEqual([...new Set(extents.map((e) => e.host))], ["h1", "h2"]);
      }
    });
  } finally {
    await h.close();
  }
});

Deno.test("a volume holds activity of at most activityHostsMax hosts; one more gets 409", async () => {
  const h = await harness();
  try {
    await h.register("db0", S * R);
    for (let i = 0; i < activityHostsMax; i++) await h.active("db0", `h${i}`, [i]);
    const res = await h.req("POST", "/v1/activity", {
      volume: "db0",
      host: "late",
      extents: [{ offset: 0, length: 1 }],
    });
    assert.equal(res.status, 409, JSON.stringify(res.json));
    assert.match(res.json.error.message, /"late"/);
    assert.equal(await keyCount(h.kv, ["activity", "db0", "late"]), 0);
    assert.equal((await h.info("db0")).activityRegions, activityHostsMax);
    await h.ok("POST", "/v1/volumes/db0/activity/promote", { host: "h0" });
    await h.active("db0", "late", [0]);
    assert.equal((await h.info("db0")).activityByHost.late, 1);
  } finally {
    await h.close();
  }
});

Deno.test("bad activity input answers 400 naming the value and changes nothing", async (t) => {
  const h = await harness();
  try {
    const size = 2 * S * R;
    await h.register("db0", size);
    await h.active("db0", "h1", [3]);
    const seq = (await h.kv.get(["seq", "db0"])).value;
    const act = (extents: unknown, extra: Record<string, unknown> = {}) => ({
      volume: "db0",
      host: "h1",
      extents,
      ...extra,
    });
    const tooMany = range(0, 4097).map((i) => ({ offset: i * R, length: 1 }));
    const cases: [string, string, string, unknown, string][] = [
      [
        "malformed JSON",
        "POST",
        "/v1/activity",
        '{"volume": "db0", "extents": [',
        "Malformed JSON",
      ],
      [
        "extent past the end, after a good one",
        "POST",
        "/v1/activity",
        act([{ offset: 0, length: R }, { offset: size - 10, length: 20 }]),
        `${size - 10}+20`,
      ],
      ["negative offset", "POST", "/v1/activity", act([{ offset: -5, length: 1 }]), "-5"],
      ["zero length", "POST", "/v1/activity", act([{ offset: 0, length: 0 }]), "length = 0"],
      ["no extents", "POST", "/v1/activity", act([]), "extents = []"],
      ["4097 extents", "POST", "/v1/activity", act(tooMany), "extents"],
      [
        "host name H",
        "POST",
        "/v1/activity",
        act([{ offset: 0, length: 1 }], { host: "H" }),
        '"H"',
      ],
      [
        "no host",
        "POST",
        "/v1/activity",
        { volume: "db0", extents: [{ offset: 0, length: 1 }] },
        "host",
      ],
      [
        "volume ../x",
        "POST",
        "/v1/activity",
        act([{ offset: 0, length: 1 }], { volume: "../x" }),
        '"../x"',
      ],
      ["retire past the end", "POST", "/v1/volumes/db0/activity/retire", {
        host: "h1",
        extents: [{ offset: size, length: 1 }],
      }, `${size}+1`],
      ["retire without host", "POST", "/v1/volumes/db0/activity/retire", {
        extents: [{ offset: 0, length: 1 }],
      }, "host"],
      [
        "retire without extents",
        "POST",
        "/v1/volumes/db0/activity/retire",
        { host: "h1" },
        "extents",
      ],
      ["promote host a/b", "POST", "/v1/volumes/db0/activity/promote", { host: "a/b" }, '"a/b"'],
      ["promote without host", "POST", "/v1/volumes/db0/activity/promote", {}, "host"],
      ["path name A", "POST", "/v1/volumes/A/activity/promote", { host: "h1" }, '"A"'],
      ["page host H", "GET", "/v1/volumes/db0/activity?host=H", undefined, '"H"'],
      ["page bad cursor", "GET", "/v1/volumes/db0/activity?cursor=abc", undefined, '"abc"'],
      [
        "page cursor of another host",
        "GET",
        "/v1/volumes/db0/activity?host=h1&cursor=h2:0",
        undefined,
        '"h2:0"',
      ],
      [
        "page cursor past the end",
        "GET",
        `/v1/volumes/db0/activity?cursor=h1:${2 * S + 1}`,
        undefined,
        `"h1:${2 * S + 1}"`,
      ],
      ["page limit 0", "GET", "/v1/volumes/db0/activity?limit=0", undefined, "limit"],
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
    assert.deepEqual(await kvRegions(h.kv, ["activity"]), [3]);
    assert.equal(await keyCount(h.kv, ["activity"]), 1);
    assert.equal(await keyCount(h.kv, ["dirty"]), 0);
    assert.equal((await h.kv.get(["seq", "db0"])).value, seq);
    const info = await h.info("db0");
    assert.deepEqual([info.activityRegions, info.dirtyRegions], [1, 0]);
  } finally {
    await h.close();
  }
});

Deno.test("activity routes answer 404 for an unknown volume", async () => {
  const h = await harness();
  try {
    const answers = [
      await h.req("POST", "/v1/activity", {
        volume: "nope",
        host: "h1",
        extents: [{ offset: 0, length: 1 }],
      }),
      await h.req("POST", "/v1/volumes/nope/activity/retire", {
        host: "h1",
        extents: [{ offset: 0, length: 1 }],
      }),
      await h.req("POST", "/v1/volumes/nope/activity/promote", { host: "h1" }),
      await h.req("GET", "/v1/volumes/nope/activity"),
    ];
    for (const res of answers) {
      assert.equal(res.status, 404, JSON.stringify(res.json));
      assert.match(res.json.error.message, /"nope"/);
    }
    assert.equal(await keyCount(h.kv, ["activity"]), 0);
  } finally {
    await h.close();
  }
});

Deno.test("activity and its counts survive reopening the KV", async () => {
  const dir = await Deno.makeTempDir();
  try {
    {
      const h = await harness({ path: `${dir}/t.kv` });
      await h.register("db0", 4 * S * R);
      await h.active("db0", "h1", [0, 1, S + 4]);
      await h.active("db0", "h2", [9]);
      await h.close();
    }
    const h = await harness({ path: `${dir}/t.kv` });
    try {
      const list = (await h.ok("GET", "/v1/volumes")).volumes as VolumeInfo[];
      assert.deepEqual(list.map((v) => [v.activityRegions, v.activityByHost]), [
        [4, { h1: 3, h2: 1 }],
      ]);
      await h.ok("POST", "/v1/volumes/db0/activity/retire", {
        host: "h1",
        extents: [{ offset: 0, length: 1 }],
      });
      assert.deepEqual(await h.ok("POST", "/v1/volumes/db0/activity/promote", { host: "h1" }), {
        regionsPromoted: 2,
      });
      assert.deepEqual((await log(h, "db0")).regions, [1, S + 4]);
      assert.deepEqual((await h.info("db0")).activityByHost, { h2: 1 });
    } finally {
      await h.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("acknowledged activity survives SIGKILL: promote after restart finds all of it", async () => {
  const dir = await Deno.makeTempDir();
  const kvPath = `${dir}/tracker.kv`;
  let proc = await startService("tracker/main.ts", ["--kv", kvPath]);
  try {
    const client = new TrackerClient(proc.url);
    const RB = 4096;
    await client.registerVolume("db0", {
      sizeBytes: 8 * S * RB,
      regionBytes: RB,
      ownerHost: "h1",
      ownerUrl: "http://127.0.0.1:9001",
    });
    const one = (r: number) => ({
      volume: "db0",
      host: "h1",
      extents: [{ offset: r * RB + 5, length: 10 }],
    });
    const base = range(0, 200).map((i) => i * 13);
    await Promise.all(base.map((r) => client.activity(one(r))));
    const retired = base.slice(0, 20);
    const { regionsRetired } = await client.retireActivity("db0", {
      host: "h1",
      extents: retired.map((r) => ({ offset: r * RB, length: RB })),
    });
    assert.equal(regionsRetired, retired.length);
    await client.activity({ volume: "db0", host: "h2", extents: [{ offset: 0, length: 1 }] });

    // More activity in flight when the tracker dies: what it acknowledged must survive.
    const flying = range(0, 400).map((i) => 4 * S + i * 7);
    const acked: number[] = [];
    let enough!: () => void;
    const fifty = new Promise<void>((resolve) => enough = resolve);
    const settled = Promise.allSettled(
      flying.map((r) =>
        client.activity(one(r)).then(() => {
          acked.push(r);
          if (acked.length === 50) enough();
        })
      ),
    );
    await fifty;
    await proc.kill();
    await settled;
    const ackedAtKill = acked.length;

    proc = await startService("tracker/main.ts", ["--kv", kvPath]);
    const again = new TrackerClient(proc.url);
    const active: number[] = [];
    let cursor: string | undefined;
    do {
      const page = await again.activityPage("db0", { host: "h1", cursor, limit: 5 });
      assert.ok(page.extents.length <= 5);
      for (const e of page.extents) {
        assert.equal(e.host, "h1");
        active.push(...range(e.offset / RB, Math.ceil((e.offset + e.length) / RB)));
      }
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    const held = new Set(active);
    const must = [...base.slice(20), ...acked];
    for (const r of must) assert.ok(held.has(r), `acknowledged activity region ${r} was lost`);
    for (const r of retired) assert.ok(!held.has(r), `retired region ${r} came back`);
    for (const r of active) assert.ok(base.includes(r) || flying.includes(r), `region ${r}`);
    assert.ok(ackedAtKill >= 50 && ackedAtKill <= flying.length);

    const info = await again.getVolume("db0");
    assert.deepEqual(info.activityByHost, { h1: held.size, h2: 1 });
    assert.equal(info.dirtyRegions, 0);
    assert.deepEqual(await again.promoteActivity("db0", "h1"), { regionsPromoted: held.size });
    const dirty: number[] = [];
    for await (const p of again.log("db0", { limit: 7 })) {
      for (const e of p.extents) dirty.push(...range(e.offset / RB, (e.offset + e.length) / RB));
    }
    assert.deepEqual(dirty, active);
    const after = await again.getVolume("db0");
    assert.deepEqual(after.activityByHost, { h2: 1 });
    assert.equal(after.dirtyRegions, held.size);
  } finally {
    await proc.kill();
    await Deno.remove(dir, { recursive: true });
  }
});
