/**
 * Honest status under backpressure and disk errors, in-process: the status table's `degraded`
 * state, the host agent probing a degraded backup with backoff instead of paying a failed round
 * trip per write, and the fork layer's answer to a primary that refuses a write the backup took.
 * Timers are stepped by hand; the backup and tracker are fakes.
 */
import assert from "node:assert/strict";
import { BackupDegradedError } from "../host/agent/backup_degraded.ts";
import { ComponentStatus } from "../host/agent/component_status.ts";
import { HostAgent } from "../host/agent/host_agent.ts";
import type { MirrorRecord } from "../host/fork/backup_batcher.ts";
import { ForkDevice } from "../host/fork/fork_device.ts";
import { RangeLock } from "../host/fork/range_lock.ts";
import { LinkRefusedError } from "../host/link/link_client.ts";
import { ManualClock } from "../src/clock.ts";
import { DiskWriteError } from "../src/errors.ts";
import { diskError } from "../src/fault_file.ts";
import { FakeBackup, FakeTracker } from "./support/fake_ports.ts";
import { FaultDevice, MemoryDevice } from "./support/memory_device.ts";
import { StepTimers } from "./support/step_timers.ts";

const region = 64 * 1024;
const sizeBytes = 16 * region;

/** Lets promise continuations (probe, link) run. */
const settle = () => new Promise((r) => setTimeout(r, 0));

/** FakeTracker keeps every tracking command (`tracks`). */
const RecordingTracker = FakeTracker;

/** A backup whose own status can say `degraded`, counting how often it was asked. */
class DegradableBackup extends FakeBackup {
  reason: string | null = null;
  statusCalls = 0;
  status() {
    this.statusCalls++;
    return Promise.resolve({
      state: this.reason === null ? "ok" as const : "degraded" as const,
      reason: this.reason,
    });
  }
}

Deno.test("a failure the component answered (503) makes it degraded, not offline; probes back off", async () => {
  const timers = new StepTimers();
  const outcomes: ((ok: boolean, err?: Error) => void)[] = [];
  const probe = () =>
    new Promise<void>((resolve, reject) =>
      outcomes.push((ok, err) => ok ? resolve() : reject(err))
    );
  const classify = (err: unknown) =>
    (err as Error).message.startsWith("Full") ? "degraded" : "offline";
  const status = new ComponentStatus("backup", probe, new ManualClock(), { timers }, classify);
  const seen: string[] = [];
  status.onChange((s) => seen.push(s));
  status.start();
  timers.fire();
  outcomes[0](true);
  await settle();
  assert.equal(status.state, "online");

  status.markOffline(new Error("Full journal"));
  assert.equal(status.state, "degraded");
  assert.equal(status.isOnline, false);
  assert.equal(status.view().lastError, "Full journal");
  timers.fire();
  assert.equal(status.state, "degraded", "no flapping to probing while a degraded one is probed");
  outcomes[1](false, new Error("Full still"));
  await settle();
  assert.equal(status.state, "degraded");
  timers.fire();
  outcomes[2](false, new Error("Connection refused"));
  await settle();
  assert.equal(status.state, "offline", "no answer at all is offline");
  timers.fire();
  outcomes[3](true);
  await settle();
  assert.equal(status.state, "online");
  assert.deepEqual(timers.delays, [0, 250, 500, 1000]);
  // A degraded component stays degraded while it is probed; an offline one shows probing.
  assert.deepEqual(seen, ["online", "degraded", "offline", "probing", "online"]);
  status.stop();
});

Deno.test("a 503 while a probe is in flight wins over that probe's success: degraded, not online", async () => {
  const timers = new StepTimers();
  const calls: (() => void)[] = [];
  const probe = () => new Promise<void>((resolve) => calls.push(resolve));
  const status = new ComponentStatus(
    "backup",
    probe,
    new ManualClock(),
    { timers },
    (err) => err instanceof LinkRefusedError && err.status === 503 ? "degraded" : "offline",
  );
  status.start();
  timers.fire();
  status.markOffline(new LinkRefusedError(503, "Journal full"));
  calls[0]();
  await settle();
  assert.equal(status.state, "degraded");
  assert.equal(status.view().lastError, "Journal full");
  status.stop();
});

Deno.test("a degraded backup is probed with backoff; writes go to the tracker and never to the link", async () => {
  const dir = await Deno.makeTempDir();
  const tracker = new RecordingTracker();
  const backup = new DegradableBackup();
  const timers = new StepTimers();
  const agent = await HostAgent.open({
    hostId: "host0",
    advertiseUrl: "http://127.0.0.1:1",
    volumes: [{ name: "vol0", path: `${dir}/vol0.img`, sizeBytes }],
    regionBytes: region,
    tracker,
    backup,
    clock: new ManualClock(),
    probe: { timers },
    linkFactory: backup.linkFactory,
    activityRegionsMax: 0,
  });
  try {
    timers.fire();
    await settle();
    assert.equal(agent.status().mode, "mirroring");
    const v = agent.volume("vol0")!;
    await v.device.write(0, new Uint8Array(4096).fill(1));
    assert.equal(backup.batches.length, 1);

    // The journal fails a write: the backup answers the link with ERROR 503.
    const epoch = agent.backupLink.epoch;
    backup.reason = "Journal write failed: No space left on device (os error 28)";
    backup.links.at(-1)!.fail(
      new LinkRefusedError(503, "The backup failed the link (503): Journal append failed"),
    );
    const s = agent.status();
    assert.equal(s.components.backup.state, "degraded");
    assert.equal(s.mode, "tracking");
    assert.equal(agent.backupLink.epoch, epoch + 1, "the epoch rose when the backup was given up");

    for (let i = 0; i < 3; i++) {
      timers.fire();
      await settle();
      assert.equal(agent.status().components.backup.state, "degraded");
      assert.match(agent.status().components.backup.lastError!, /No space left on device/);
    }
    assert.deepEqual(timers.delays.slice(1), [250, 500, 1000, 2000]);
    assert.equal(backup.links.length, 1, "no link is opened to a degraded backup");

    const commandsBefore = tracker.tracks.length;
    for (let i = 1; i < 16; i++) await v.device.write(i * region, new Uint8Array(4096).fill(2));
    assert.equal(backup.batches.length, 1, "no write was sent to the degraded backup");
    assert.equal(v.fork!.counters.viaTracker, 15);
    assert.ok(tracker.tracks.length > commandsBefore, "the writes were marked at the tracker");
    assert.equal(backup.statusCalls, 4, "one status call per probe, none per write");

    backup.reason = null;
    timers.fire();
    await settle();
    assert.equal(agent.status().components.backup.state, "online");
    assert.equal(agent.status().mode, "mirroring");
    assert.equal(backup.links.length, 2);
  } finally {
    await agent.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a probe that finds the backup degraded says so, with the backup's reason", async () => {
  const backup = new DegradableBackup();
  backup.reason = "Journal full: 900 bytes pending of journalBytesMax 1000";
  const timers = new StepTimers();
  const dir = await Deno.makeTempDir();
  const agent = await HostAgent.open({
    hostId: "host0",
    advertiseUrl: "http://127.0.0.1:1",
    volumes: [{ name: "vol0", path: `${dir}/vol0.img`, sizeBytes }],
    regionBytes: region,
    tracker: new FakeTracker(),
    backup,
    clock: new ManualClock(),
    probe: { timers },
    linkFactory: backup.linkFactory,
  });
  try {
    timers.fire();
    await settle();
    const view = agent.status().components.backup;
    assert.equal(view.state, "degraded");
    assert.equal(view.lastError, new BackupDegradedError(backup.reason).message);
    assert.equal(backup.registrations.length, 0, "nothing is registered with a degraded backup");
  } finally {
    await agent.close();
    await Deno.remove(dir, { recursive: true });
  }
});

/** A fork over a primary that refuses writes while `fail` is set, with a tracing tracker. */
function primaryRig(online: boolean, kind: "enospc" | "eio") {
  const trace: string[] = [];
  const mem = new MemoryDevice(1 << 20);
  const primary = new FaultDevice(mem, (op) => op === "write");
  Object.defineProperty(primary, "write", {
    value: (offset: number, data: Uint8Array) => {
      trace.push(`primary.write ${offset}+${data.length}`);
      if (primary.failing) return Promise.reject(diskError(kind, "Primary image"));
      return mem.write(offset, data);
    },
  });
  const backup = {
    isOnline: online,
    markOffline() {
      this.isOnline = false;
    },
  };
  const fork = new ForkDevice(primary, {
    volume: "vol0",
    locks: new RangeLock(),
    backup,
    batcher: {
      submit(rec: MirrorRecord) {
        trace.push(`backup.submit ${rec.offset}+${rec.length}`);
        return Promise.resolve();
      },
    },
    marker: {
      ensureMarked(offset: number, length: number) {
        trace.push(`tracker.mark ${offset}+${length}`);
        return Promise.resolve();
      },
    },
  });
  return { trace, fork, primary, mem };
}

Deno.test("a primary that refuses a write the backup took gets its range marked before the write fails", async (t) => {
  for (const [kind, status] of [["enospc", 507], ["eio", 500]] as const) {
    await t.step(`${kind}: ${status}`, async () => {
      const { trace, fork } = primaryRig(true, kind);
      const err = await fork.write(8192, new Uint8Array(100).fill(9)).then(
        () => assert.fail("the write succeeded"),
        (e) => e,
      );
      assert.ok(err instanceof DiskWriteError);
      assert.equal(err.status, status);
      assert.equal(err.code, kind.toUpperCase());
      assert.match(err.message, /Write to volume "vol0" at 8192\+100 failed: the primary refused/);
      assert.match(err.message, /marked at the tracker/);
      assert.deepEqual(trace, [
        "backup.submit 8192+100",
        "primary.write 8192+100",
        "tracker.mark 8192+100",
      ]);
      assert.equal(fork.counters.primaryFailed, 1);
      assert.equal(fork.counters.viaBackup, 1);
    });
  }
});

Deno.test("a primary failure after a tracker mark needs no second mark; the fork heals with the disk", async () => {
  const { trace, fork, primary, mem } = primaryRig(false, "eio");
  await assert.rejects(fork.write(0, new Uint8Array(10).fill(1)), DiskWriteError);
  assert.deepEqual(trace, ["tracker.mark 0+10", "primary.write 0+10"]);
  primary.failing = false;
  await fork.write(0, new Uint8Array(10).fill(3));
  assert.deepEqual(mem.bytes.subarray(0, 10), new Uint8Array(10).fill(3));
});
