import assert from "node:assert/strict";
import { ActivityRecord, type ActivityTracker } from "../host/fork/activity_record.ts";
import { regionsOf } from "../src/extent.ts";
import type { TrackRequest } from "../src/schemas.ts";
import { settled } from "./support/gate.ts";

const R = 4096; // region bytes in these tests
const size = 1024 * R;

/** A tracker that keeps the activity set a real one would, and logs every call in order. */
class FakeTracker implements ActivityTracker {
  readonly log: string[] = [];
  readonly active = new Set<number>();
  readonly dirty = new Set<number>();
  failTrack = false;
  /** When set, activity commands take effect at once but their answer waits on it. */
  ackGate?: Promise<void>;
  async activity(req: TrackRequest) {
    this.log.push(
      `activity ${req.extents.map((e) => `${e.offset / R}+${e.length / R}`).join(",")}`,
    );
    for (const e of req.extents) {
      const run = regionsOf(e.offset, e.length, R);
      for (let r = run.first; r < run.first + run.count; r++) this.active.add(r);
    }
    if (this.ackGate) await this.ackGate;
  }
  retireActivity(_v: string, req: { host: string; extents: { offset: number; length: number }[] }) {
    this.log.push(`retire ${req.extents.map((e) => `${e.offset / R}+${e.length / R}`).join(",")}`);
    for (const e of req.extents) {
      const run = regionsOf(e.offset, e.length, R);
      for (let r = run.first; r < run.first + run.count; r++) this.active.delete(r);
    }
    return Promise.resolve();
  }
  track(req: TrackRequest) {
    this.log.push(`track ${req.extents.length}`);
    if (this.failTrack) return Promise.reject(new Error("tracker down"));
    for (const e of req.extents) {
      const run = regionsOf(e.offset, e.length, R);
      for (let r = run.first; r < run.first + run.count; r++) this.dirty.add(r);
    }
    return Promise.resolve();
  }
}

function record(tracker: FakeTracker, opts: { max?: number; predict?: number } = {}) {
  const rec = new ActivityRecord(tracker, "h", "v", R, size, () => 0, {
    unitsMax: opts.max ?? 64,
    predictUnits: opts.predict ?? 4,
  });
  rec.retireEnabled = true;
  return rec;
}

/** Every hot region must be active at the tracker: the host's record is never larger. */
function assertSubset(rec: ActivityRecord, tracker: FakeTracker) {
  for (const run of rec.hot.runs()) {
    for (let r = run.first; r < run.first + run.count; r++) {
      assert.ok(
        tracker.active.has(r),
        `region ${r} is hot at the host but not active at the tracker`,
      );
    }
  }
}

Deno.test("a stream marks ahead; a lone cold write marks only its own; hot writes are free", async () => {
  const t = new FakeTracker();
  const rec = record(t, { predict: 4 });
  await rec.acquire(10 * R + 5, 100);
  rec.release(10 * R + 5, 100, true);
  assert.deepEqual(t.log, ["activity 10+1"], "no stream yet: no prediction");
  for (let r = 11; r <= 15; r++) {
    await rec.acquire(r * R, R);
    rec.release(r * R, R, true);
  }
  assert.deepEqual(t.log, ["activity 10+1", "activity 11+5"], "the stream rides on one command");
  await rec.acquire(16 * R, 1);
  rec.release(16 * R, 1, true);
  assert.equal(t.log.length, 3);
  assertSubset(rec, t);
});

Deno.test("concurrent writes to one cold unit share one command", async () => {
  const t = new FakeTracker();
  let open!: () => void;
  t.ackGate = new Promise<void>((resolve) => (open = resolve));
  const rec = record(t, { predict: 0 });
  const all = Array.from({ length: 16 }, (_, i) => rec.acquire(3 * R + i * 100, 100));
  await settled();
  assert.deepEqual(t.log, ["activity 3+1"], "one command while its answer is held");
  open();
  await Promise.all(all);
  assert.deepEqual(t.log, ["activity 3+1"]);
});

Deno.test("the hot set is bounded: least recently written, unpinned regions are retired", async () => {
  const t = new FakeTracker();
  const rec = record(t, { max: 16, predict: 0 });
  await rec.acquire(0, R); // region 0 stays pinned (a write in flight)
  for (let r = 1; r < 60; r++) {
    await rec.acquire(r * R, R);
    rec.release(r * R, R, true);
    await settled();
  }
  await rec.retireNow();
  assert.ok(rec.hot.size <= 16, `hot ${rec.hot.size}`);
  assert.ok(rec.regionsRetired > 0);
  assert.ok(rec.hot.has(0) && t.active.has(0), "a pinned region is never retired");
  assert.ok(rec.hot.has(59), "the most recent region stays hot");
  assertSubset(rec, t);
  rec.release(0, R, true);
});

Deno.test("nothing is retired before the previous run's marks were promoted", async () => {
  const t = new FakeTracker();
  const rec = record(t, { max: 4, predict: 0 });
  rec.retireEnabled = false;
  for (let r = 0; r < 20; r++) {
    await rec.acquire(r * R, R);
    rec.release(r * R, R, true);
  }
  await rec.retireNow();
  assert.ok(!t.log.some((l) => l.startsWith("retire")));
  assert.equal(rec.hot.size, 20);
});

Deno.test("a write to a region being retired waits and marks it again after the retire", async () => {
  const t = new FakeTracker();
  const rec = record(t, { max: 2, predict: 0 });
  for (let r = 0; r < 3; r++) {
    await rec.acquire(r * R, R);
    rec.release(r * R, R, true);
  }
  // The retire of region 0 is now under way or done; a write to region 0 must end up active.
  await rec.acquire(0, R);
  assert.ok(t.active.has(0), "region 0 is active at the tracker when its write proceeds");
  assertSubset(rec, t);
  rec.release(0, R, true);
});

Deno.test("a command in flight does not make a region retired meanwhile look hot", async () => {
  const t = new FakeTracker();
  const rec = record(t, { max: 1000, predict: 1 });
  await rec.acquire(5 * R, R);
  rec.release(5 * R, R, true);
  // A write to region 4 marks 4 and (predicted) 5 in one command; the tracker applies it at once
  // but its answer is held back.
  let open!: () => void;
  t.ackGate = new Promise<void>((resolve) => (open = resolve));
  const pending = rec.acquire(4 * R, R);
  await settled();
  // Meanwhile region 5 (hot, not pinned) is retired: the retire reaches the tracker after the
  // command did, so the tracker no longer holds 5.
  Object.assign(rec, { unitsMax: 0 });
  await rec.retireNow();
  Object.assign(rec, { unitsMax: 1000 });
  assert.ok(!t.active.has(5));
  open();
  t.ackGate = undefined;
  await pending;
  assert.ok(!rec.hot.has(5), "the late answer must not make region 5 hot again");
  assertSubset(rec, t);
  rec.release(4 * R, R, true);
});

Deno.test("tainted regions are not retired until a dirty mark covers them", async () => {
  const t = new FakeTracker();
  const rec = record(t, { max: 1, predict: 0 });
  t.failTrack = true;
  await rec.acquire(7 * R, R);
  rec.release(7 * R, R, false); // backup and tracker failed for this write
  for (let r = 20; r < 25; r++) {
    await rec.acquire(r * R, R);
    rec.release(r * R, R, true);
  }
  await rec.retireNow();
  assert.ok(t.active.has(7) && rec.hot.has(7), "the tainted region keeps its activity mark");
  t.failTrack = false;
  await rec.retireNow();
  assert.ok(t.dirty.has(7), "it was turned into a dirty mark first");
  assert.equal(rec.tainted.size, 0);
  await rec.retireNow();
  assertSubset(rec, t);
});
