/**
 * A volume's trust in the host agent (issue 9), in-process over fake ports that keep generations:
 * the primary's sidecar, a lost or older tracker record (checksum resync needed, cache dropped,
 * later writes marked, plain resync refused), and split brain between two primaries of one
 * secondary (not mirrored, nothing resynced, resolved by discarding the secondary).
 */
import assert from "node:assert/strict";
import { HostAgent } from "../host/agent/host_agent.ts";
import {
  newSidecar,
  primaryGenerationSuffix,
  writeSidecar,
} from "../host/fork/generation_sidecar.ts";
import { resyncOrphan } from "../host/resync/orphan_resync.ts";
import type { BackupClient } from "../backup/client.ts";
import type { TrackerClient } from "../tracker/client.ts";
import type { VolumeInfo } from "../src/schemas.ts";
import { VolumeTrust } from "../host/agent/volume_trust.ts";
import { ManualClock } from "../src/clock.ts";
import { ServiceError } from "../src/errors.ts";
import { FakeBackup, FakeTracker } from "./support/fake_ports.ts";
import { StepTimers } from "./support/step_timers.ts";

const region = 64 * 1024;
const sizeBytes = 16 * region;

/** Waits (turn by turn of the event loop, bounded) until `cond` holds. */
async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 1000 && !cond(); i++) await new Promise((r) => setTimeout(r, 0));
  assert.ok(cond(), `Timed out waiting for ${what}`);
}

interface Agent {
  agent: HostAgent;
  timers: StepTimers;
  dir: string;
}

async function openAgent(tracker: FakeTracker, backup: FakeBackup, dir?: string): Promise<Agent> {
  dir ??= await Deno.makeTempDir();
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
    predictRegions: 0,
  });
  return { agent, timers, dir };
}

async function closeAgent(a: Agent): Promise<void> {
  await a.agent.close();
  await Deno.remove(a.dir, { recursive: true });
}

const write = (a: Agent, regionIndex: number) =>
  a.agent.volume("vol0")!.device.write(regionIndex * region, new Uint8Array(4096).fill(7));

async function sidecarOf(a: Agent): Promise<Record<string, unknown>> {
  return JSON.parse(await Deno.readTextFile(`${a.dir}/vol0.img${primaryGenerationSuffix}`));
}

Deno.test("a primary's generation sidecar is made at first open and kept", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const one = await VolumeTrust.open("vol0", `${dir}/vol0.img`, () => 0);
    const two = await VolumeTrust.open("vol0", `${dir}/vol0.img`, () => 0);
    assert.match(one.primaryGeneration, /^[0-9a-f-]{36}$/);
    assert.equal(two.primaryGeneration, one.primaryGeneration);
    assert.equal(two.trust, "trusted");
    const other = await VolumeTrust.open("vol1", `${dir}/vol1.img`, () => 0);
    assert.notEqual(other.primaryGeneration, one.primaryGeneration);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a damaged sidecar, or another volume's, stops the open naming the file and the way out", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/vol0.img${primaryGenerationSuffix}`;
    await Deno.writeTextFile(path, "{not json");
    await assert.rejects(
      VolumeTrust.open("vol0", `${dir}/vol0.img`, () => 0),
      (e: Error) =>
        e.message.includes(path) && e.message.includes("--checksum --discard-secondary"),
    );
    await Deno.writeTextFile(path, JSON.stringify({ version: 1, volume: "vol0", trust: "maybe" }));
    await assert.rejects(VolumeTrust.open("vol0", `${dir}/vol0.img`, () => 0), /damaged/);
    await Deno.remove(path);
    await VolumeTrust.open("vol0", `${dir}/vol0.img`, () => 0);
    await assert.rejects(
      VolumeTrust.open("vol9", `${dir}/vol0.img`, () => 0),
      /belongs to volume "vol0", not "vol9"/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a tracker that lost its record: checksum resync needed, cache dropped, later writes marked", async () => {
  const tracker = new FakeTracker();
  tracker.generation = crypto.randomUUID();
  const backup = new FakeBackup(); // never probed here: the backup stays away, writes are marked
  const a = await openAgent(tracker, backup);
  try {
    const first = tracker.generation;
    await write(a, 0);
    assert.equal(tracker.tracks.length, 1);
    await write(a, 0);
    assert.equal(tracker.tracks.length, 1, "a cached mark needs no call");
    assert.equal(a.agent.status().volumes[0].trust, "trusted");

    tracker.loseRecord(); // the tracker restarts on an empty KV
    await write(a, 5); // 404 → registered again → a new generation is seen → retried
    const v = a.agent.status().volumes[0];
    assert.equal(v.trust, "checksum-resync-needed");
    assert.match(v.trustReason!, new RegExp(`generation ${tracker.generation}, not ${first}`));
    assert.equal(v.generations?.tracker, tracker.generation);
    const calls = tracker.tracks.length;
    await write(a, 0);
    assert.equal(
      tracker.tracks.length,
      calls + 1,
      "region 0 was dropped from the cache: marked again",
    );
    assert.equal(a.agent.volume("vol0")!.fork!.counters.failed, 0, "writes went on");

    const side = await sidecarOf(a);
    assert.equal(side.trust, "checksum-resync-needed");
    assert.equal(side.trackerGeneration, tracker.generation);

    a.timers.fire(); // the backup comes back; a plain resync must still be refused
    await until(() => a.agent.backupStatus.isOnline, "the backup online");
    assert.throws(
      () => a.agent.startResync("vol0"),
      (e: unknown) =>
        e instanceof ServiceError && e.status === 409 &&
        e.message.includes("deno task reconstruct --volume vol0 --checksum"),
    );
    await a.agent.markTrusted("vol0"); // what a successful checksum resync calls
    assert.equal(a.agent.status().volumes[0].trust, "trusted");
    assert.equal((await sidecarOf(a)).trust, "trusted");
  } finally {
    await closeAgent(a);
  }
});

Deno.test("an older copy of the tracker's KV is noticed by its lower mark sequence, also after a restart", async () => {
  const tracker = new FakeTracker();
  tracker.generation = crypto.randomUUID();
  const backup = new FakeBackup();
  let a = await openAgent(tracker, backup);
  const dir = a.dir;
  try {
    await write(a, 0);
    await write(a, 1);
    await write(a, 2);
    assert.equal(tracker.markSeq, 3);
    await a.agent.close();
    // Restarted, the agent registers and persists the sequence it saw (3).
    a = await openAgent(tracker, backup, dir);
    assert.equal((await sidecarOf(a)).markSeq, 3);
    assert.equal(a.agent.status().volumes[0].trust, "trusted");
    await a.agent.close();
    tracker.markSeq = 1; // restored from a copy taken after the first mark
    a = await openAgent(tracker, backup, dir);
    const v = a.agent.status().volumes[0];
    assert.equal(v.trust, "checksum-resync-needed");
    assert.match(v.trustReason!, /sequence 1, behind 3/);
  } finally {
    await closeAgent(a);
  }
});

Deno.test("a mark sequence learnt from tracking answers reaches the sidecar at the next renewal", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/vol0.img`;
  try {
    const trust = await VolumeTrust.open("vol0", path, () => 0);
    const generation = crypto.randomUUID();
    const answer = (markSeq: number) => ({ generation, markSeq, dirtyRegions: markSeq });
    await trust.checkTracker(answer(0), trust.snapshot(), true); // registration: adopted
    await trust.checkTracker(answer(3), trust.snapshot(), false); // tracking answers: memory only
    const read = async () =>
      JSON.parse(await Deno.readTextFile(`${path}${primaryGenerationSuffix}`)).markSeq;
    assert.equal(await read(), 0);
    await trust.checkTracker(answer(3), trust.snapshot(), true); // a renewal, nothing new in it
    // Without this a restarted agent would take a restored older copy (sequence < 3) for current.
    assert.equal(await read(), 3);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a tracking answer behind what was seen makes the volume need a checksum resync at once", async () => {
  const tracker = new FakeTracker();
  tracker.generation = crypto.randomUUID();
  const a = await openAgent(tracker, new FakeBackup());
  try {
    await write(a, 0);
    await write(a, 1);
    tracker.markSeq = 0; // an older copy put in place behind the agent's back
    await write(a, 2);
    assert.equal(a.agent.status().volumes[0].trust, "checksum-resync-needed");
    const calls = tracker.tracks.length;
    await write(a, 1);
    assert.equal(tracker.tracks.length, calls + 1, "the cache was dropped");
  } finally {
    await closeAgent(a);
  }
});

Deno.test("split brain: two primaries against one secondary; the second is not mirrored until it discards the secondary", async () => {
  const tracker = new FakeTracker();
  tracker.generation = crypto.randomUUID();
  const backup = new FakeBackup();
  backup.generations = true;
  const a = await openAgent(tracker, backup);
  const b = await openAgent(tracker, backup);
  try {
    const genA = a.agent.volume("vol0")!.trust.primaryGeneration;
    const genB = b.agent.volume("vol0")!.trust.primaryGeneration;
    assert.notEqual(genA, genB);
    a.timers.fire();
    await until(() => a.agent.backupStatus.isOnline, "A online");
    assert.equal(backup.secondaries.get("vol0")?.writerGeneration, genA);
    assert.equal(a.agent.status().volumes[0].trust, "trusted");

    b.timers.fire();
    await until(() => b.agent.backupStatus.isOnline, "B online");
    const vb = b.agent.status().volumes[0];
    assert.equal(vb.trust, "split-brain");
    assert.match(vb.trustReason!, new RegExp(`written by primary generation ${genA}`));
    assert.equal(backup.secondaries.get("vol0")?.writerGeneration, genA, "B did not take over");

    // B's writes go on, marked at the tracker, never mirrored.
    const batches = backup.batches.length;
    await write(b, 3);
    assert.equal(backup.batches.length, batches);
    assert.equal(b.agent.volume("vol0")!.fork!.counters.viaTracker, 1);
    // A still mirrors.
    await write(a, 4);
    assert.equal(backup.batches.length, batches + 1);

    const refusedWith = (pattern: RegExp) => (e: unknown) =>
      e instanceof ServiceError && e.status === 409 && pattern.test(e.message);
    const resolve = /deno task reconstruct --volume vol0 --checksum --discard-secondary/;
    assert.throws(() => b.agent.startResync("vol0"), refusedWith(resolve));
    await assert.rejects(b.agent.requestResync("vol0", { mode: "checksum" }), refusedWith(resolve));
    await assert.rejects(
      b.agent.requestResync("vol0", { discardSecondary: true }),
      (e: unknown) => e instanceof ServiceError && e.status === 400,
    );

    // B keeps its primary: the backup adopts it, then the checksum resync starts (this fake
    // backup has no checksums route, so it fails and the volume stays untrusted).
    const started = await b.agent.requestResync("vol0", {
      mode: "checksum",
      discardSecondary: true,
    });
    assert.equal(started.mode, "checksum");
    assert.equal(backup.secondaries.get("vol0")?.writerGeneration, genB);
    assert.equal(b.agent.status().volumes[0].trust, "checksum-resync-needed");
    assert.equal((await sidecarOf(b)).trust, "checksum-resync-needed");

    // A learns at its next connect that the secondary is no longer its own.
    for (const l of backup.links) l.fail(); // the backup restarts: both agents probe again
    await until(() => a.timers.armed, "A probing");
    a.timers.fire();
    await until(() => a.agent.status().volumes[0].trust === "split-brain", "A split brain");
    await b.agent.markTrusted("vol0"); // B's checksum resync succeeded
    assert.equal(b.agent.status().volumes[0].trust, "trusted");
    await assert.rejects(a.agent.markTrusted("vol0"), /split brain/);
  } finally {
    await closeAgent(a);
    await closeAgent(b);
  }
});

Deno.test("reconstruct --host refuses a plain resync of a primary whose sidecar is not trusted", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/vol0.img`;
    const side = newSidecar("vol0");
    await writeSidecar(`${path}${primaryGenerationSuffix}`, {
      ...side,
      trust: "checksum-resync-needed",
      trustReason: "the tracker's record was lost",
    });
    const info = { name: "vol0", sizeBytes, regionBytes: region, leaseExpiresAt: 0 } as VolumeInfo;
    await assert.rejects(
      resyncOrphan(info, {
        tracker: {} as TrackerClient, // never reached
        backup: {} as BackupClient,
        asHost: "reconstruct",
        primaryPath: path,
        force: false,
        show: () => {},
      }),
      /checksum-resync-needed \(the tracker's record was lost\); a plain resync from here is refused/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a loss noticed while a checksum resync ran keeps the volume untrusted", async () => {
  const tracker = new FakeTracker();
  tracker.generation = crypto.randomUUID();
  const a = await openAgent(tracker, new FakeBackup());
  try {
    tracker.loseRecord();
    await write(a, 1);
    assert.equal(a.agent.status().volumes[0].trust, "checksum-resync-needed");
    const atStart = a.agent.volume("vol0")!.trust.lossCount; // a checksum resync begins
    tracker.loseRecord(); // and the tracker loses its record again meanwhile
    await write(a, 2);
    assert.equal(await a.agent.markTrusted("vol0", atStart), false);
    assert.equal(a.agent.status().volumes[0].trust, "checksum-resync-needed");
    const again = a.agent.volume("vol0")!.trust.lossCount;
    assert.equal(await a.agent.markTrusted("vol0", again), true);
    assert.equal(a.agent.status().volumes[0].trust, "trusted");
  } finally {
    await closeAgent(a);
  }
});

Deno.test("answers to requests sent before a new tracker generation was adopted are not taken for an older copy", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const t = await VolumeTrust.open("vol0", `${dir}/vol0.img`, () => 0);
    const g1 = crypto.randomUUID();
    const g2 = crypto.randomUUID();
    assert.equal(
      (await t.checkTracker({ generation: g1, markSeq: 5 }, t.snapshot(), true))?.outcome,
      "in-sync",
    );
    await t.checkTracker({ generation: g1, markSeq: 8 }, t.snapshot(), false);
    const [first, second] = [t.snapshot(), t.snapshot()]; // two marks in flight, 8 seen
    // The tracker lost its record meanwhile: both answers come from the new generation.
    assert.equal(
      (await t.checkTracker({ generation: g2, markSeq: 1 }, first, false))?.outcome,
      "record-lost",
    );
    assert.equal(
      (await t.checkTracker({ generation: g2, markSeq: 2 }, second, false))?.outcome,
      "in-sync",
    );
    assert.equal(t.lossCount, 1);
    // A later request sees the new floor: an answer behind it is an older copy again.
    const later = t.snapshot();
    assert.equal(later.markSeq, 2);
    assert.equal(
      (await t.checkTracker({ generation: g2, markSeq: 1 }, later, false))?.outcome,
      "record-lost",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
