/**
 * Cycle mode's schedule (host/cycle/cycle_mirror.ts), stepped by hand: a cycle every interval,
 * measured from the previous cycle's start; why it waits while it may not run; a cycle longer
 * than the interval followed at once; a fresh cycle asked for while one runs.
 */
import assert from "node:assert/strict";
import { ManualClock } from "../src/clock.ts";
import { cycleRig, region } from "./support/cycle_rig.ts";
import { settled } from "./support/gate.ts";
import { StepTimers } from "./support/step_timers.ts";

const intervalMs = 10_000;

/** Steps queued work until the schedule armed its next timer (no wall-clock wait). */
async function nextArmed(timers: StepTimers): Promise<void> {
  for (let i = 0; i < 1000 && !timers.armed; i++) await settled();
  assert.ok(timers.armed, "the schedule armed its next tick");
}

Deno.test("the schedule runs a cycle every interval, and says why it waits while the backup is offline", async () => {
  const clock = new ManualClock();
  const timers = new StepTimers();
  const r = await cycleRig({ clock, cycles: { intervalMs, timers } });
  try {
    r.cycles.startSchedule();
    assert.deepEqual(timers.delays, [intervalMs]);
    assert.equal(r.cycles.progress.nextAt, clock.now() + intervalMs);
    await r.v.device.write(3 * region, new Uint8Array(10).fill(3));
    r.backup.isOnline = false;
    timers.fire();
    await nextArmed(timers);
    assert.match(r.cycles.progress.waiting ?? "", /backup is not online/);
    assert.equal(r.cycles.progress.cycleSeq, 0);
    assert.equal(r.staging.commits, 0);
    r.backup.isOnline = true;
    timers.fire();
    await nextArmed(timers);
    assert.equal(r.cycles.progress.waiting, null);
    assert.equal(r.cycles.progress.cycleSeq, 1);
    assert.equal(r.staging.commits, 1);
    assert.deepEqual(timers.delays, [intervalMs, intervalMs, intervalMs]);
    r.cycles.stop();
    assert.equal(timers.armed, false);
    assert.equal(r.cycles.progress.nextAt, null);
  } finally {
    await r.close();
  }
});

Deno.test("a cycle longer than the interval is followed at once", async () => {
  const clock = new ManualClock();
  const timers = new StepTimers();
  const r = await cycleRig({ clock, cycles: { intervalMs, timers } });
  try {
    r.cycles.startSchedule();
    await r.v.device.write(5 * region, new Uint8Array(10).fill(5));
    const held = r.staging.hold();
    timers.fire();
    await held.reached;
    clock.advance(intervalMs + 1);
    held.release();
    await nextArmed(timers);
    assert.equal(r.staging.commits, 1);
    assert.equal(timers.delays.at(-1), 0);
  } finally {
    await r.close();
  }
});

Deno.test("a fresh cycle asked for while one runs follows it, and ships what was written meanwhile", async () => {
  const r = await cycleRig();
  try {
    await r.v.device.write(1 * region, new Uint8Array(10).fill(1));
    const held = r.staging.hold();
    const first = r.cycles.start();
    await held.reached;
    await r.v.device.write(9 * region, new Uint8Array(10).fill(9)); // after the first freeze
    const fresh = r.cycles.start({ fresh: true });
    held.release();
    const done = await fresh;
    assert.equal(await first, done, "both callers get the last cycle's progress");
    assert.equal(done.cycleSeq, 2);
    assert.equal(r.staging.commits, 2);
    assert.deepEqual(r.staging.secondary, await r.primaryBytes());
  } finally {
    await r.close();
  }
});
