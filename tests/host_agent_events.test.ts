/**
 * The host agent's own events (host/agent/agent_events.ts): the backup's state changes and each
 * volume's mode, with `probing` inside an outage not told; a job's start, throttled progress and
 * end, from its progress as the agent looks at it, stamped with the job's own start and end
 * times. Timers and probes are stepped by hand.
 */
import assert from "node:assert/strict";
import { AgentEvents, progressEventMs } from "../host/agent/agent_events.ts";
import { ComponentStatus } from "../host/agent/component_status.ts";
import type { HostVolume } from "../host/agent/volume_stack.ts";
import { ManualClock } from "../src/clock.ts";
import { processEvents, type TrackmirrorEvent } from "../src/events.ts";
import { setLogQuiet } from "../src/log_line.ts";
import { StepTimers } from "./support/step_timers.ts";

const settle = () => new Promise((r) => setTimeout(r, 0));

/** The host's events emitted while `fn` runs. */
async function eventsOf(fn: () => Promise<void>): Promise<TrackmirrorEvent[]> {
  const seen: TrackmirrorEvent[] = [];
  const unsubscribe = processEvents.subscribe((e) => {
    if (e.service === "host") seen.push(e);
  });
  setLogQuiet(true);
  try {
    await fn();
  } finally {
    setLogQuiet(false);
    unsubscribe();
  }
  return seen;
}

function idle() {
  return {
    state: "idle" as "idle" | "running" | "done" | "failed",
    startedAt: null as number | null,
    finishedAt: null as number | null,
    regionsTotal: 0,
    regionsDone: 0,
    bytesTotal: 0,
    bytesDone: 0,
    error: null as string | null,
  };
}

/** A volume with only what the watcher reads: its name and its jobs' progress. */
function fakeVolume(name: string) {
  const resync = { progress: idle() };
  const v = { name, resync, checksumResync: { progress: idle() }, verify: { progress: idle() } };
  return { v, resync, volume: v as unknown as HostVolume };
}

Deno.test("the backup's changes are told once each, probing skipped, with every volume's mode", async () => {
  const timers = new StepTimers();
  const probes: { resolve: () => void; reject: (e: Error) => void }[] = [];
  const backup = new ComponentStatus(
    "backup",
    () => new Promise<void>((resolve, reject) => probes.push({ resolve, reject })),
    new ManualClock(),
    { timers },
  );
  const volumes = [fakeVolume("vol0").volume, fakeVolume("vol1").volume];
  const events = await eventsOf(async () => {
    const watcher = new AgentEvents({
      backup,
      backupUrl: "http://127.0.0.1:8702",
      forking: true,
      volumes: () => volumes,
      now: () => 0,
    });
    backup.start();
    timers.fire();
    probes[0].resolve();
    await settle();
    backup.markOffline(new Error("The backup closed the link"));
    for (let i = 1; i < 3; i++) { // two failed probes: probing, offline, probing, offline
      timers.fire();
      probes[i].reject(new Error("Connection refused"));
      await settle();
    }
    timers.fire();
    probes[3].resolve();
    await settle();
    backup.stop();
    watcher.stop();
  });
  assert.deepEqual(events.map((e) => `${e.kind} ${e.volume ?? "-"} ${e.data?.to ?? ""}`), [
    "component.online - ",
    "mode.change vol0 mirroring",
    "mode.change vol1 mirroring",
    "component.offline - ",
    "mode.change vol0 tracking",
    "mode.change vol1 tracking",
    "component.online - ",
    "mode.change vol0 mirroring",
    "mode.change vol1 mirroring",
  ]);
  assert.equal(events[3].message, "backup offline (The backup closed the link)");
  assert.equal(events[3].data?.url, "http://127.0.0.1:8702");
  assert.equal(events[4].data?.from, "mirroring");
});

Deno.test("a job is told at its start, every 10 % or 5 s of progress, and at its end", async () => {
  const backup = new ComponentStatus("backup", () => Promise.resolve(), new ManualClock(), {
    timers: new StepTimers(),
  });
  const { volume, resync } = fakeVolume("vol0");
  let now = 1000;
  const events = await eventsOf(() => {
    const watcher = new AgentEvents({
      backup,
      forking: true,
      volumes: () => [volume],
      now: () => now,
    });
    const p = resync.progress;
    watcher.lookAtJobs(); // idle: nothing
    Object.assign(p, { state: "running", startedAt: now, regionsTotal: 100, bytesTotal: 1000 });
    watcher.lookAtJobs(); // start
    p.bytesDone = 50;
    watcher.lookAtJobs(); // 5 %, 0 s: nothing
    p.bytesDone = 120;
    watcher.lookAtJobs(); // 12 %: progress
    p.bytesDone = 150;
    now += progressEventMs;
    watcher.lookAtJobs(); // 15 %, but 5 s later: progress
    Object.assign(p, { state: "done", bytesDone: 1000, regionsDone: 100 });
    watcher.lookAtJobs(); // finish
    watcher.lookAtJobs(); // told already
    // A second job, started and failed between two looks: its start and its failure.
    Object.assign(p, { state: "failed", startedAt: now + 1, error: "Backup offline" });
    watcher.lookAtJobs();
    watcher.stop();
    return Promise.resolve();
  });
  assert.deepEqual(events.map((e) => `${e.kind} ${e.data?.percent ?? ""}`), [
    "resync.start ",
    "resync.progress 12",
    "resync.progress 15",
    "resync.finish ",
    "resync.start ",
    "resync.fail ",
  ]);
  assert.equal(events.at(-1)!.level, "error");
  assert.match(events.at(-1)!.message, /resync failed: Backup offline/);
});

Deno.test("a job's start and end carry its own times, not the look's; seq follows the telling", async () => {
  const backup = new ComponentStatus("backup", () => Promise.resolve(), new ManualClock(), {
    timers: new StepTimers(),
  });
  const { volume, resync } = fakeVolume("vol0");
  const looked = 1_700_000_000_000;
  const events = await eventsOf(() => {
    const watcher = new AgentEvents({
      backup,
      forking: true,
      volumes: () => [volume],
      now: () => looked,
    });
    const p = resync.progress;
    // Started 400 ms and finished 100 ms before the watcher's look: both told at that look.
    Object.assign(p, {
      state: "done",
      startedAt: looked - 400,
      finishedAt: looked - 100,
      regionsTotal: 2,
      regionsDone: 2,
      bytesTotal: 8,
      bytesDone: 8,
    });
    watcher.lookAtJobs();
    // The next one fails; looked at again later.
    Object.assign(p, {
      state: "failed",
      startedAt: looked - 50,
      finishedAt: looked - 20,
      error: "Backup offline",
    });
    watcher.lookAtJobs();
    watcher.stop();
    return Promise.resolve();
  });
  assert.deepEqual(events.map((e) => [e.kind, e.at - looked, e.data?.finishedAt ?? null]), [
    ["resync.start", -400, looked - 100],
    ["resync.finish", -100, looked - 100],
    ["resync.start", -50, looked - 20],
    ["resync.fail", -20, looked - 20],
  ]);
  assert.equal(events[0].atIso, new Date(looked - 400).toISOString());
  const seqs = events.map((e) => e.seq);
  assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), "seq in the order told");
});
