/**
 * The backup's status table: probing with doubling backoff, and a probe that races a failed write.
 * Timers are stepped by hand (no sleeps); probes are gates the test opens.
 */
import assert from "node:assert/strict";
import { ComponentStatus } from "../host/agent/component_status.ts";
import { ManualClock } from "../src/clock.ts";
import { StepTimers } from "./support/step_timers.ts";

/** A probe whose every call waits for the test to settle it. */
function gatedProbe() {
  const calls: { resolve: () => void; reject: (e: Error) => void }[] = [];
  const probe = () => new Promise<void>((resolve, reject) => calls.push({ resolve, reject }));
  return { probe, calls };
}

/** Lets the probe's continuation run. */
const settle = () => new Promise((r) => setTimeout(r, 0));

Deno.test("failed probes back off from 250 ms, doubling up to 5 s", async () => {
  const timers = new StepTimers();
  const { probe, calls } = gatedProbe();
  const status = new ComponentStatus("backup", probe, new ManualClock(), { timers });
  status.start();
  for (let i = 0; i < 8; i++) {
    timers.fire();
    assert.equal(status.state, "probing");
    calls[i]!.reject(new Error(`Refused ${i}`));
    await settle();
    assert.equal(status.state, "offline");
    assert.equal(status.view().lastError, `Refused ${i}`);
  }
  assert.deepEqual(timers.delays, [0, 250, 500, 1000, 2000, 4000, 5000, 5000, 5000]);
  assert.equal(status.view().probes, 8);
  status.stop();
});

Deno.test("a successful probe brings the component online and a write failure takes it offline", async () => {
  const timers = new StepTimers();
  const { probe, calls } = gatedProbe();
  const clock = new ManualClock();
  const status = new ComponentStatus("backup", probe, clock, { timers });
  const seen: string[] = [];
  status.onChange((s) => seen.push(s));
  status.start();
  timers.fire();
  calls[0]!.resolve();
  await settle();
  assert.equal(status.isOnline, true);
  clock.advance(10);
  status.markOffline(new Error("Batch refused"));
  assert.equal(status.state, "offline");
  assert.equal(status.view().lastErrorAt, clock.now());
  assert.deepEqual(timers.delays, [0, 250]);
  assert.deepEqual(seen, ["online", "offline"]);
  status.stop();
});

Deno.test("a write failing while a probe is in flight keeps the component from going online", async () => {
  const timers = new StepTimers();
  const { probe, calls } = gatedProbe();
  const status = new ComponentStatus("backup", probe, new ManualClock(), { timers });
  status.start();
  timers.fire();
  assert.equal(status.state, "probing");
  status.markOffline(new Error("Late write failed"));
  calls[0]!.resolve();
  await settle();
  assert.notEqual(status.state, "online");
  assert.equal(status.view().lastError, "Late write failed");
  assert.ok(timers.armed, "another probe is scheduled");
  // The next probe, undisturbed, succeeds.
  timers.fire();
  calls[1]!.resolve();
  await settle();
  assert.equal(status.state, "online");
  status.stop();
});

Deno.test("a stopped component schedules no probe and ignores a late probe answer", async () => {
  const timers = new StepTimers();
  const { probe, calls } = gatedProbe();
  const status = new ComponentStatus("backup", probe, new ManualClock(), { timers });
  status.start();
  timers.fire();
  status.stop();
  calls[0]!.resolve();
  await settle();
  assert.equal(status.state, "probing");
  assert.equal(timers.armed, false);
});
