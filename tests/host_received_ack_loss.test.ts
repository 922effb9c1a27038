/**
 * Seed 002's promise, in-process and deterministic: in `received` mode, regions the backup
 * acknowledged on receipt but had not hardened when it died are dirty at the tracker afterwards,
 * before any later write is acknowledged; and when the tracker cannot take them, later writes
 * fail instead of being acknowledged. In `durable` mode the same held sync acknowledges nothing.
 *
 * Real pieces: a HostAgent with its LinkClient, a LinkServer over a Journal whose group-commit
 * sync the test holds (JournalOptions.syncData), on 127.0.0.1 through a TcpProxy whose `cut()` is
 * the backup's death. The tracker is a FakeTracker that records (and can hold or refuse) marks.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { HostAgent } from "../host/agent/host_agent.ts";
import { Journal } from "../backup/journal.ts";
import { replayJournal } from "../backup/journal_replay.ts";
import { LinkServer } from "../backup/link_server.ts";
import { SecondaryStore } from "../backup/secondary_store.ts";
import { TcpProxy } from "../harness/tcp_proxy.ts";
import { systemClock } from "../src/clock.ts";
import type { Extent } from "../src/extent.ts";
import type { AckMode } from "../src/link_protocol.ts";
import type { TrackRequest } from "../src/schemas.ts";
import { FakeBackup, FakeTracker } from "./support/fake_ports.ts";
import { type Gate, gate, settled } from "./support/gate.ts";
import { StepTimers } from "./support/step_timers.ts";

const region = 64 * 1024;
const sizeBytes = 64 * region;
/** Regions written while the journal's sync is held (distinct, not adjacent). */
const heldRegions = [3, 7, 8, 20, 41];
/** The region of the write issued after the backup's death. */
const laterRegion = 60;

/** A tracker that records every dirty mark, and can hold or refuse them. */
class MarkingTracker extends FakeTracker {
  marks: Extent[] = [];
  hold: Gate | undefined;
  refuseMarks = false;
  override async track(req: TrackRequest): Promise<unknown> {
    if (this.hold) await this.hold.opened;
    if (this.refuseMarks) {
      throw Object.assign(new Error("Tracker unreachable"), { status: 503 });
    }
    this.marks.push(...req.extents);
    return {};
  }
  /** The regions marked so far. */
  markedRegions(): number[] {
    const out = new Set<number>();
    for (const e of this.marks) {
      for (let r = Math.floor(e.offset / region); r * region < e.offset + e.length; r++) out.add(r);
    }
    return [...out].sort((a, b) => a - b);
  }
}

/** Polls (one event-loop turn at a time) until `cond` holds; fails after `turnsMax` turns. */
async function until(cond: () => boolean, what: string, turnsMax = 2000): Promise<void> {
  for (let i = 0; i < turnsMax; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 1));
  }
  assert.fail(`Timed out waiting for ${what}`);
}

/** Tracks whether a promise settled, without awaiting it. */
function watch<T>(p: Promise<T>) {
  const w = { done: false, error: undefined as unknown, promise: p };
  p.then(() => (w.done = true), (err) => {
    w.done = true;
    w.error = err;
  });
  return w;
}

interface Rig {
  agent: HostAgent;
  tracker: MarkingTracker;
  proxy: TcpProxy;
  journal: Journal;
  /** Resolves the journal's held syncs (all, now and later). */
  releaseSync(): void;
  syncsHeld(): number;
}

async function withRig(ack: AckMode, fn: (rig: Rig) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "received_ack_" });
  const journalDir = join(dir, "journal");
  await Deno.mkdir(journalDir, { recursive: true });
  const store = await SecondaryStore.open(join(dir, "volumes"));
  const syncGate = gate();
  let syncsHeld = 0;
  const journal = await Journal.open({
    dir: journalDir,
    journalBytesMax: 64 * 1024 * 1024,
    syncData: async (file) => {
      syncsHeld++;
      await syncGate.opened;
      await file.syncData();
    },
  }, await replayJournal(journalDir, () => {}, () => {}));
  const server = LinkServer.listen({ journal, store }, { hostname: "127.0.0.1", port: 0 });
  const proxy = new TcpProxy({ hostname: "127.0.0.1", port: server.port! });
  const tracker = new MarkingTracker();
  const backup = new FakeBackup();
  const timers = new StepTimers();
  let agent: HostAgent | undefined;
  try {
    agent = await HostAgent.open({
      hostId: "host0",
      advertiseUrl: "http://127.0.0.1:1",
      volumes: [{ name: "vol0", path: join(dir, "vol0.img"), sizeBytes }],
      regionBytes: region,
      tracker,
      backup,
      clock: systemClock,
      probe: { timers },
      ack,
      linkAddress: `tcp://127.0.0.1:${proxy.port}`,
      activityRegionsMax: 0,
      predictRegions: 0,
    });
    timers.fire(); // the first probe: registers, opens the link through the proxy
    await until(() => agent!.backupStatus.isOnline, "the backup to come online");
    await fn({
      agent,
      tracker,
      proxy,
      journal,
      releaseSync: () => syncGate.open(),
      syncsHeld: () => syncsHeld,
    });
  } finally {
    syncGate.open();
    tracker.hold?.open();
    await agent?.close();
    await proxy.close();
    await server.close();
    await journal.close();
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
}

function fill(seed: number): Uint8Array {
  return new Uint8Array(4096).fill(seed);
}

Deno.test("received ack: regions acknowledged but not hardened when the backup dies are marked dirty before any later write is acknowledged", async () => {
  await withRig("received", async ({ agent, tracker, proxy, syncsHeld }) => {
    const device = agent.volume("vol0")!.device;
    // Acknowledged on receipt while the journal's sync is held: received, not hardened.
    for (const r of heldRegions) await device.write(r * region + 100, fill(r));
    assert.ok(syncsHeld() >= 1, "the journal's sync was never reached");
    assert.deepEqual(tracker.marks, [], "marks were made while the backup was healthy");

    // The backup dies: its connections drop, nothing it received was hardened.
    proxy.refuse(true);
    proxy.cut();
    await until(() => !agent.backupStatus.isOnline, "the host to see the link fail");

    // A later write waits for the unhardened union to be marked at the tracker.
    tracker.hold = gate();
    const later = watch(device.write(laterRegion * region, fill(99)));
    for (let i = 0; i < 20; i++) await settled();
    assert.equal(later.done, false, "a later write was acknowledged before the marks committed");
    assert.deepEqual(tracker.marks, []);
    tracker.hold.open();
    await later.promise;
    assert.deepEqual(
      tracker.markedRegions(),
      [...heldRegions, laterRegion],
      "the tracker must hold the unhardened regions and the later write's own region",
    );
    // The unhardened union committed first, the later write's own mark after it.
    assert.deepEqual(
      tracker.marks.at(-1),
      { offset: laterRegion * region, length: region },
      "the later write's mark came before the unhardened union's",
    );
    assert.equal(agent.backupLink.regionsCovered, heldRegions.length);
  });
});

Deno.test("received ack: when the tracker cannot take the unhardened regions, a later write fails instead of being acknowledged", async () => {
  await withRig("received", async ({ agent, tracker, proxy }) => {
    const device = agent.volume("vol0")!.device;
    for (const r of heldRegions) await device.write(r * region, fill(r));
    tracker.refuseMarks = true;
    proxy.refuse(true);
    proxy.cut();
    await until(() => !agent.backupStatus.isOnline, "the host to see the link fail");
    await assert.rejects(
      device.write(laterRegion * region, fill(99)),
      (err: Error & { status?: number }) => err.status === 503,
      "a write after the backup's death was acknowledged though its loss is not covered",
    );
    assert.equal(agent.backupLink.uncoveredRegions, heldRegions.length);
    // Once the tracker takes the marks, writes are acknowledged again.
    tracker.refuseMarks = false;
    await device.write(laterRegion * region, fill(99));
    assert.deepEqual(tracker.markedRegions(), [...heldRegions, laterRegion]);
    assert.equal(agent.backupLink.uncoveredRegions, 0);
  });
});

Deno.test("durable ack: with the backup's journal sync held, no write is acknowledged until it syncs", async () => {
  await withRig("durable", async ({ agent, tracker, releaseSync, syncsHeld }) => {
    const device = agent.volume("vol0")!.device;
    const writes = heldRegions.map((r) => watch(device.write(r * region, fill(r))));
    await until(() => syncsHeld() >= 1, "the journal to reach its sync");
    for (let i = 0; i < 20; i++) await settled();
    assert.deepEqual(
      writes.map((w) => w.done),
      heldRegions.map(() => false),
      "a durable write was acknowledged before the journal synced it",
    );
    releaseSync();
    await Promise.all(writes.map((w) => w.promise));
    assert.deepEqual(tracker.marks, [], "the writes fell back to the tracker");
    assert.ok(agent.backupStatus.isOnline);
  });
});
