import assert from "node:assert/strict";
import { type Clock, ManualClock, systemClock } from "../src/clock.ts";

Deno.test("manual clock only moves when told to", () => {
  const clock: ManualClock = new ManualClock(1_000);
  assert.equal(clock.now(), 1_000);
  assert.equal(clock.now(), 1_000, "reading the clock does not move it");
  clock.advance(250);
  assert.equal(clock.now(), 1_250);
  clock.set(5);
  assert.equal(clock.now(), 5);
  clock.advance(0);
  assert.equal(clock.now(), 5);
});

Deno.test("manual clock starts at a fixed, plausible epoch time", () => {
  const a = new ManualClock();
  const b = new ManualClock();
  assert.equal(a.now(), b.now());
  assert.ok(new Date(a.now()).getUTCFullYear() >= 2023);
});

Deno.test("system clock reads the wall clock", () => {
  const clock: Clock = systemClock;
  const before = Date.now();
  const now = clock.now();
  const after = Date.now();
  assert.ok(before <= now && now <= after, `${before} <= ${now} <= ${after}`);
});
