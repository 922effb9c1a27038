/**
 * Cycle mode (issue 10 item 2) in-process: a real tracker served on a loopback port, a volume
 * stack in cycle mode, and a backup writer that stages cycles like the backup does
 * (tests/support/staging_backup.ts). Proves what a cycle ships, copy-before-write's ordering, the
 * marker's forget and re-mark, and that an abandoned cycle is continued.
 */
import assert from "node:assert/strict";
import { cycleRig as rig, region } from "./support/cycle_rig.ts";
import { gate } from "./support/gate.ts";
import type { LogPage } from "../src/schemas.ts";

const fill = (byte: number, length = 100) => new Uint8Array(length).fill(byte);

Deno.test("cycle mode sends no write to the backup; a cycle ships each marked region once and clears it", async () => {
  const r = await rig();
  try {
    for (const b of [1, 2, 3]) await r.v.device.write(3 * region + 10, fill(b)); // region 3, 3 times
    await r.v.device.write(9 * region - 5, fill(7, 10)); // regions 8 and 9
    assert.equal(r.staging.shipped.length, 0, "nothing reached the backup before the cycle");
    assert.equal(await r.dirty(), 3);
    assert.equal(r.v.activity?.hot.size ?? 0, 0);
    const done = await r.cycles.start();
    assert.equal(done.state, "done", done.error ?? "");
    assert.equal(done.cycle, "committed");
    assert.deepEqual(r.staging.shipped.toSorted((a, b) => a - b), [
      3 * region,
      8 * region,
      9 * region,
    ]);
    assert.equal(done.bytesDone, 3 * region);
    assert.equal(r.staging.commits, 1);
    assert.deepEqual(r.staging.secondary, await r.primaryBytes());
    assert.equal(await r.dirty(), 0, "the commit's clear left nothing marked");
    assert.equal(done.cyclesCommitted, 1);
    assert.ok(done.pointInTime !== null && done.lastCommittedAt !== null);
  } finally {
    await r.close();
  }
});

Deno.test("copy-before-write: a write during a cycle ships its region's frozen content first, so the commit is the primary as of the freeze", async () => {
  const r = await rig();
  try {
    await r.v.device.write(2 * region, fill(0xa1)); // A
    await r.v.device.write(5 * region, fill(0xb1)); // B
    const frozen = await r.primaryBytes();
    const held = r.staging.hold(); // the walker's first copy (A) waits, holding A's lock
    const cycle = r.cycles.start();
    await held.reached;
    // B is not shipped yet: its write must ship b1 before it lands. Without copy-before-write the
    // walker would later read b2, while A carries a1: a mix of two moments.
    await r.v.device.write(5 * region, fill(0xb2));
    const writeA = r.v.device.write(2 * region, fill(0xa2)); // waits for the walker's lock on A
    held.release();
    await writeA;
    const done = await cycle;
    assert.equal(done.state, "done", done.error ?? "");
    assert.equal(done.regionsCopiedBeforeWrite, 1);
    assert.deepEqual(r.staging.secondary, frozen, "the secondary is the primary as of the freeze");
    assert.equal(r.staging.shipped.filter((o) => o === 5 * region).length, 1, "B shipped once");
    assert.equal(await r.dirty(), 2, "both regions written after the freeze stay marked");
    const next = await r.cycles.start();
    assert.equal(next.state, "done", next.error ?? "");
    assert.deepEqual(r.staging.secondary, await r.primaryBytes());
    assert.equal(await r.dirty(), 0);
  } finally {
    await r.close();
  }
});

Deno.test("a write after the freeze to a region whose mark was cached marks it again, and the clear keeps it", async () => {
  const r = await rig();
  try {
    await r.v.device.write(4 * region, fill(1));
    assert.ok(r.v.marker.cache.has(4), "the mark is cached");
    const commandsBefore = r.v.marker.commandsSent;
    const held = r.staging.hold();
    const cycle = r.cycles.start();
    await held.reached; // frozen, and the walker's copy of region 4 holds its lock
    const write = r.v.device.write(4 * region + 50, fill(2));
    held.release();
    await write;
    const done = await cycle;
    assert.equal(done.state, "done", done.error ?? "");
    assert.ok(r.v.marker.commandsSent > commandsBefore, "the write had to mark again");
    assert.equal(await r.dirty(), 1, "region 4 is still dirty after the cycle's clear");
    assert.notDeepEqual(r.staging.secondary, await r.primaryBytes());
    assert.equal((await r.cycles.start()).state, "done");
    assert.deepEqual(r.staging.secondary, await r.primaryBytes());
  } finally {
    await r.close();
  }
});

Deno.test("a cycle whose link fails is abandoned: no commit, marks kept; the next cycle continues its stage and converges", async () => {
  const r = await rig();
  try {
    await r.v.device.write(1 * region, fill(1));
    await r.v.device.write(6 * region, fill(6));
    const before = r.staging.secondary.slice();
    // The first copy (region 1) lands in the stage; the second fails.
    const held = r.staging.hold();
    const failed = r.cycles.start();
    await held.reached;
    r.staging.failNext();
    held.release();
    const p = await failed;
    assert.equal(p.state, "failed");
    assert.equal(p.cycle, "abandoned");
    assert.equal(r.staging.commits, 0);
    assert.ok(r.staging.stageOpen, "the stage stays open at the backup");
    assert.deepEqual(r.staging.secondary, before, "the secondary stays at its last point");
    assert.equal(await r.dirty(), 2, "every mark stays");
    await r.v.device.write(1 * region, fill(11)); // written after the abandoned copy
    const next = await r.cycles.start();
    assert.equal(next.state, "done", next.error ?? "");
    assert.equal(r.staging.commits, 1);
    assert.deepEqual(r.staging.secondary, await r.primaryBytes());
    assert.equal(await r.dirty(), 0);
  } finally {
    await r.close();
  }
});

Deno.test("a cycle with nothing marked sends nothing and records the point in time", async () => {
  const r = await rig();
  try {
    const done = await r.cycles.start();
    assert.equal(done.state, "done");
    assert.equal(done.regionsTotal, 0);
    assert.equal(done.cycle, undefined);
    assert.equal(r.staging.shipped.length + r.staging.commits, 0);
    assert.ok(done.pointInTime !== null);
  } finally {
    await r.close();
  }
});

Deno.test("a cycle is refused while the backup is offline or the volume is not promoted", async () => {
  const r = await rig();
  try {
    r.backup.isOnline = false;
    assert.throws(() => r.cycles.start(), /backup is not online/);
    r.backup.isOnline = true;
    r.v.promoted = false;
    assert.throws(() => r.cycles.start(), /not yet promoted/);
  } finally {
    await r.close();
  }
});

Deno.test("the tracker's log is read without holding writes, and a write during the read is shipped in the cycle", async () => {
  const r = await rig();
  const held = gate();
  const reading = gate();
  const log = r.tracker.log.bind(r.tracker);
  try {
    await r.v.device.write(2 * region, fill(2));
    // The log as the tracker served it before the write below: region 7 is not in it.
    r.tracker.log = async function* (name: string): AsyncGenerator<LogPage> {
      const pages: LogPage[] = [];
      for await (const page of log(name)) pages.push(page);
      reading.open();
      await held.opened;
      yield* pages;
    };
    const cycle = r.cycles.start();
    await reading.opened;
    await r.v.device.write(7 * region, fill(7)); // completes: the read holds no lock
    held.open();
    const done = await cycle;
    assert.equal(done.state, "done", done.error ?? "");
    assert.equal(done.regionsTotal, 2, "the written region joined the frozen set");
    assert.deepEqual(r.staging.secondary, await r.primaryBytes());
  } finally {
    held.open();
    r.tracker.log = log;
    await r.close();
  }
});

Deno.test("a trim over many owed regions during a cycle ships their frozen content a chunk at a time, each once", async () => {
  const r = await rig();
  try {
    for (let i = 0; i < 8; i++) await r.v.device.write(i * region, fill(0x10 + i, region));
    const frozen = await r.primaryBytes();
    const held = r.staging.hold(); // the walker's copy of region 0
    const cycle = r.cycles.start();
    await held.reached;
    const trim = r.v.device.trim(1 * region, 7 * region + 10);
    const waitForTrim = trim.then(() => "trimmed");
    held.release();
    assert.equal(await waitForTrim, "trimmed");
    const done = await cycle;
    assert.equal(done.state, "done", done.error ?? "");
    assert.equal(done.regionsCopiedBeforeWrite, 7);
    const counts = new Map<number, number>();
    for (const o of r.staging.shipped) counts.set(o, (counts.get(o) ?? 0) + 1);
    assert.deepEqual([...counts.values()], Array(8).fill(1), "each region shipped once, alone");
    assert.deepEqual(r.staging.secondary, frozen);
  } finally {
    await r.close();
  }
});
