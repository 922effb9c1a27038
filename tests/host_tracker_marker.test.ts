/**
 * The host's tracker marker: coalescing dirty marks, its cache of marked regions, forgetting, and
 * look-ahead prediction for streams. The fake tracker answers when the test opens its gate.
 */
import assert from "node:assert/strict";
import { TrackerMarker } from "../host/fork/tracker_marker.ts";
import type { TrackRequest } from "../src/schemas.ts";
import { gate, settled } from "./support/gate.ts";

Deno.test("tracker marker coalesces marks and skips regions it knows are marked", async () => {
  const sent: TrackRequest[] = [];
  const answer = gate();
  const marker = new TrackerMarker(
    {
      async track(req) {
        sent.push(req);
        await answer.opened;
      },
    },
    "host0",
    "vol0",
    65536,
    1 << 30,
    () => 1,
  );
  const marks = Array.from({ length: 50 }, (_, i) => marker.ensureMarked(i * 65536, 100));
  answer.open();
  await Promise.all(marks);
  assert.deepEqual(
    sent.map((s) => s.extents.length),
    [1, 1, 48],
    "two commands fly at once; the marks queued behind them share the third",
  );
  const before = sent.length;
  await marker.ensureMarked(3 * 65536 + 7, 1000); // inside a region already marked
  assert.equal(sent.length, before);
  assert.equal(marker.cacheHits, 1);
  marker.forget({ first: 3, count: 1 });
  await marker.ensureMarked(3 * 65536 + 7, 1000);
  assert.equal(sent.length, before + 1, "a forgotten region is marked again");
});

Deno.test("a failed tracking command caches nothing", async () => {
  let fail = true;
  const marker = new TrackerMarker(
    {
      track: () => fail ? Promise.reject(new Error("down")) : Promise.resolve(),
    },
    "h",
    "v",
    4096,
    1 << 20,
    () => 0,
  );
  await assert.rejects(() => marker.ensureMarked(0, 10), /down/);
  assert.equal(marker.cache.size, 0);
  fail = false;
  await marker.ensureMarked(0, 10);
  assert.equal(marker.cache.size, 1);
});

Deno.test("prediction marks ahead for a stream, not for a lone write", async () => {
  const sent: TrackRequest[] = [];
  const marker = new TrackerMarker(
    {
      track(req) {
        sent.push(req);
        return Promise.resolve();
      },
    },
    "h",
    "v",
    4096,
    100 * 4096,
    () => 0,
    7,
  );
  await marker.ensureMarked(50 * 4096, 10); // a lone write: its own region only
  assert.deepEqual(sent[0].extents, [{ offset: 50 * 4096, length: 4096 }]);
  sent.length = 0;
  for (let off = 0; off < 100 * 4096; off += 4096) await marker.ensureMarked(off, 4096);
  assert.deepEqual(sent[0].extents, [{ offset: 0, length: 4096 }], "a stream starts alone");
  assert.deepEqual(sent[1].extents, [{ offset: 4096, length: 8 * 4096 }], "then marks 7 ahead");
  assert.ok(sent.length <= 1 + Math.ceil(99 / 8), `${sent.length} commands for 100 regions`);
  const last = sent.at(-1)!.extents[0];
  assert.ok(last.offset + last.length <= 100 * 4096, "prediction stops at the volume's end");
});

Deno.test("concurrent writes to one cold region share one tracking command", async () => {
  let calls = 0;
  const answer = gate();
  const marker = new TrackerMarker(
    {
      async track() {
        calls++;
        await answer.opened;
      },
    },
    "h",
    "v",
    65536,
    1 << 20,
    () => 0,
    16,
  );
  const marks = Array.from({ length: 16 }, (_, i) => marker.ensureMarked(i * 4096, 4096));
  answer.open();
  await Promise.all(marks);
  assert.equal(calls, 1);
});

Deno.test("regions forgotten while a mark is in flight are not cached when it is answered", async () => {
  const answer = gate();
  const reached = gate();
  let held = false;
  const marker = new TrackerMarker(
    {
      track: () => {
        if (!held) return Promise.resolve();
        reached.open();
        return answer.opened;
      },
    },
    "h",
    "v",
    4096,
    1 << 20,
    () => 0,
    3,
  );
  await marker.ensureMarked(0, 4096); // region 0: a stream can start here
  held = true;
  const pending = marker.ensureMarked(4096, 4096); // a stream: marks regions 1..4
  await reached.opened;
  marker.forget({ first: 3, count: 1 }); // a resync cleared region 3 meanwhile
  answer.open();
  await pending;
  assert.ok(marker.cache.has(1) && marker.cache.has(2) && marker.cache.has(4));
  assert.ok(!marker.cache.has(3), "a forgotten region must be marked again before it is trusted");
});

Deno.test("a stream marks its next window before it gets there", async () => {
  let calls = 0;
  const tracker = {
    track() {
      calls++;
      return Promise.resolve();
    },
  };
  const marker = new TrackerMarker(tracker, "h", "v", 4096, 1000 * 4096, () => 0, 16);
  for (let off = 0; off < 200 * 4096; off += 4096) {
    await marker.ensureMarked(off, 4096);
    await settled(); // the application's pace: the tracker answers between two writes
  }
  // Without marking ahead, every 17th write would wait for the tracker: about 188 of 200 hits.
  const hits = marker.cacheHits;
  assert.ok(hits >= 195, `only ${hits} of 200 writes found their marks ready`);
  assert.ok(calls <= 2 + Math.ceil(200 / 17) * 2, `${calls} commands`);
});
