/**
 * The host agent in-process, over fake tracker and backup ports: lease and promotion at open, the
 * backup link's epoch and status, automatic resync, and the errors of startResync.
 */
import assert from "node:assert/strict";
import { HostAgent, type HostAgentOptions } from "../host/agent/host_agent.ts";
import { ManualClock } from "../src/clock.ts";
import { ServiceError } from "../src/errors.ts";
import { FakeBackup, FakeTracker } from "./support/fake_ports.ts";
import { StepTimers } from "./support/step_timers.ts";

const region = 64 * 1024;
const sizeBytes = 16 * region;

/** Lets promise continuations (probe, auto-resync) run. */
const settle = () => new Promise((r) => setTimeout(r, 0));

async function withAgent(
  fn: (
    x: { agent: HostAgent; tracker: FakeTracker; backup: FakeBackup; timers: StepTimers },
  ) => void | Promise<void>,
  opts: Partial<HostAgentOptions> & { before?: (t: FakeTracker) => void } = {},
): Promise<void> {
  const dir = await Deno.makeTempDir();
  const tracker = new FakeTracker();
  const backup = new FakeBackup();
  const timers = new StepTimers();
  opts.before?.(tracker);
  try {
    const agent = await HostAgent.open({
      hostId: "host0",
      advertiseUrl: "http://127.0.0.1:1",
      volumes: [
        { name: "vol0", path: `${dir}/vol0.img`, sizeBytes },
        { name: "vol1", path: `${dir}/vol1.img`, sizeBytes },
      ],
      regionBytes: region,
      tracker,
      backup,
      clock: new ManualClock(),
      probe: { timers },
      linkFactory: backup.linkFactory,
      ...opts,
    });
    try {
      await fn({ agent, tracker, backup, timers });
    } finally {
      await agent.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("open registers every volume with the tracker and promotes the earlier run's activity", async () => {
  await withAgent(({ agent, tracker }) => {
    assert.deepEqual(tracker.registrations.map((r) => r.name), ["vol0", "vol1"]);
    const reg = tracker.registrations[0]!.reg;
    assert.equal(reg.ownerHost, "host0");
    assert.equal(reg.ownerUrl, "http://127.0.0.1:1");
    assert.equal(reg.regionBytes, region);
    assert.equal(reg.leaseMs, 30_000);
    assert.equal(reg.takeover, false);
    assert.deepEqual(tracker.promotions, ["vol0", "vol1"]);
    for (const v of agent.volumes) {
      assert.equal(v.promoted, true);
      assert.equal(v.activity?.retireEnabled, true);
    }
    const status = agent.status();
    assert.deepEqual(status.volumes.map((v) => [v.name, v.registered, v.promoted]), [
      ["vol0", true, true],
      ["vol1", true, true],
    ]);
    assert.equal(status.components.tracker.lastError, null);
  });
});

Deno.test("the lease is renewed every leaseMs / 3 and activity is promoted only once", async () => {
  await withAgent(async ({ tracker }) => {
    await tracker.registered(2 + 4); // open, then two renewals of both volumes
    assert.deepEqual(tracker.promotions, ["vol0", "vol1"]);
    assert.ok(tracker.registrations.every((r) => r.reg.leaseMs === 30));
    // Leases held elsewhere are taken over at start-up only, never by a renewal.
    assert.deepEqual(
      tracker.registrations.slice(0, 4).map((r) => r.reg.takeover),
      [true, true, false, false],
    );
  }, { leaseMs: 30, takeover: true });
});

Deno.test("open fails naming the volume when the tracker refuses it", async () => {
  await assert.rejects(
    withAgent(() => {}, {
      before: (t) => (t.refuse = { status: 409, message: "Lease held by host9" }),
    }),
    (err: unknown) =>
      err instanceof RangeError &&
      err.message === 'Tracker refused volume "vol0": Lease held by host9',
  );
});

Deno.test("an unreachable tracker at open is reported in the status, not fatal", async () => {
  await withAgent(
    (x) => {
      const status = x.agent.status();
      assert.equal(status.components.tracker.lastError, "connection refused");
      assert.ok(status.volumes.every((v) => !v.registered && !v.promoted));
    },
    { before: (t) => (t.refuse = { status: 0, message: "connection refused" }) },
  );
});

Deno.test("the backup going offline raises the epoch every batch and registration carries", async () => {
  await withAgent(async ({ agent, backup, timers }) => {
    assert.equal(agent.status().mode, "tracking");
    timers.fire();
    await settle();
    assert.equal(agent.status().mode, "mirroring");
    const epoch = agent.backupLink.epoch;
    assert.deepEqual(backup.registrations, [
      { name: "vol0", sizeBytes, epoch },
      { name: "vol1", sizeBytes, epoch },
    ]);
    await agent.backupLink.writer.writeBatch("vol0", new Uint8Array(3));
    backup.links.at(-1)!.fail(new Error("Batch refused"));
    const status = agent.status();
    assert.equal(status.mode, "tracking");
    assert.equal(status.components.backup.state, "offline");
    assert.equal(status.components.backup.lastError, "Batch refused");
    assert.equal(agent.backupLink.epoch, epoch + 1);
    await assert.rejects(
      agent.backupLink.writer.writeBatch("vol0", new Uint8Array(4)),
      /link is down/,
      "nothing is sent on a failed link",
    );
    timers.fire();
    await settle();
    assert.equal(agent.status().mode, "mirroring");
    assert.equal(backup.registrations.at(-1)?.epoch, epoch + 1);
    assert.equal(backup.links.length, 2, "the probe opened a new link");
    await agent.backupLink.writer.writeBatch("vol0", new Uint8Array(5));
    assert.deepEqual(backup.batches.map((b) => b.epoch), [epoch, epoch + 1]);
  });
});

Deno.test("a probe after an offline the link did not cause opens a link with the new epoch", async () => {
  // Found by the fault simulation: a failure from outside the link (a late write of an older
  // link, a resync copy) takes the backup offline and raises the epoch while the link stays up;
  // the probe registers the new epoch (raising the backup's fence) and must not keep the link
  // whose HELLO named the old one, or the backup refuses its next batch (409) and the host falls
  // back to tracking once more.
  await withAgent(async ({ agent, backup, timers }) => {
    timers.fire();
    await settle();
    const epoch = agent.backupLink.epoch;
    agent.backupLink.markOffline(new Error("A write on an earlier link failed late"));
    assert.equal(agent.backupLink.epoch, epoch + 1);
    assert.equal(backup.links.at(-1)!.failure, undefined, "the link itself is still up");
    timers.fire();
    await settle();
    assert.equal(agent.status().mode, "mirroring");
    assert.equal(backup.registrations.at(-1)?.epoch, epoch + 1);
    await agent.backupLink.writer.writeBatch("vol0", new Uint8Array(5));
    assert.equal(backup.batches.at(-1)?.epoch, epoch + 1, "the batch carries the fenced epoch");
    assert.equal(backup.links.length, 2);
    assert.ok(backup.links[0]!.failure, "the link of the old epoch is closed");
  });
});

Deno.test("dirty volumes are resynced when the backup comes back, with autoResync", async () => {
  await withAgent(async ({ agent, tracker, timers }) => {
    timers.fire();
    await settle();
    assert.ok(tracker.getVolumeCalls >= 2, `${tracker.getVolumeCalls} getVolume calls`);
    for (const v of agent.volumes) assert.notEqual(v.resync.progress.state, "idle");
  }, { autoResync: true, before: (t) => (t.dirtyRegions = 1) });
});

Deno.test("without autoResync the backup's return starts no resync", async () => {
  await withAgent(async ({ agent, tracker, timers }) => {
    timers.fire();
    await settle();
    assert.equal(agent.backupStatus.isOnline, true);
    // One look per volume: is it dirty, so its cycle opens on the new link (issue 10)?
    assert.equal(tracker.getVolumeCalls, agent.volumes.length);
    for (const v of agent.volumes) assert.equal(v.resync.progress.state, "idle");
  }, { before: (t) => (t.dirtyRegions = 1) });
});

Deno.test("startResync answers 404 for an unknown volume and 503 while the backup is away", async () => {
  await withAgent(async ({ agent, timers }) => {
    assert.throws(
      () => agent.startResync("nope"),
      (e: unknown) =>
        e instanceof ServiceError && e.status === 404 &&
        e.message === 'Volume "nope" is not served by host "host0"',
    );
    assert.throws(
      () => agent.startResync("vol0"),
      (e: unknown) =>
        e instanceof ServiceError && e.status === 503 &&
        e.message === 'Cannot resync volume "vol0": backup is probing',
    );
    timers.fire();
    await settle();
    assert.equal(agent.startResync("vol0").volume, "vol0");
    await settle();
    assert.equal(agent.resyncProgress("vol0").state, "done");
  });
});

Deno.test("a resync waits for the previous run's activity marks: refused until they are promoted", async () => {
  await withAgent(
    async ({ agent, tracker, timers }) => {
      timers.fire(); // the backup comes online; the tracker still refuses the registration
      await settle();
      assert.equal(agent.backupStatus.isOnline, true);
      assert.throws(
        () => agent.startResync("vol0"),
        (e: unknown) =>
          e instanceof ServiceError && e.status === 409 &&
          /not yet promoted to dirty marks .*connection refused/.test(e.message),
      );
      assert.equal(agent.resyncProgress("vol0").state, "idle");
      tracker.refuse = undefined;
      await tracker.registered(2); // the next renewal reaches the tracker and promotes
      await settle();
      assert.equal(agent.status().volumes[0].promoted, true);
      assert.equal(agent.startResync("vol0").volume, "vol0");
    },
    { leaseMs: 30, before: (t) => (t.refuse = { status: 0, message: "connection refused" }) },
  );
});
