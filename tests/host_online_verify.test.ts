/**
 * Online verify over a memory primary and a memory secondary whose digests a fake backup computes:
 * the differing regions are found exactly and marked at the tracker, nothing is written, and a
 * region under write while it is compared is re-checked under its range lock instead of being
 * reported as a difference.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { OnlineVerify } from "../host/resync/online_verify.ts";
import { RangeLock } from "../host/fork/range_lock.ts";
import { systemClock } from "../src/clock.ts";
import { type ChecksumRequest, hashRegions } from "../src/region_checksums.ts";
import { randomBytes, seededRandom } from "../src/random.ts";
import type { TrackRequest } from "../src/schemas.ts";
import { gate, settled } from "./support/gate.ts";
import { MemoryDevice } from "./support/memory_device.ts";

const region = 64 * 1024;
const sizeBytes = 40 * region + 1000; // 41 regions, the last one 1000 bytes

function sha(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

function rig() {
  const primary = new MemoryDevice(sizeBytes, (b) => b.set(randomBytes(seededRandom(3), b.length)));
  const secondary = new MemoryDevice(sizeBytes, (b) => b.set(primary.bytes));
  const locks = new RangeLock();
  const backup = {
    isOnline: true,
    markOffline(_err: unknown) {
      this.isOnline = false;
    },
  };
  const checksumCalls: ChecksumRequest[] = [];
  /** Runs once the backup's digests of a call are computed, before they are answered. */
  const afterHash: ((req: ChecksumRequest) => void)[] = [];
  const firstCall = gate();
  const secondaryChecksums = {
    checksums(_v: string, req: ChecksumRequest): Promise<Uint8Array> {
      checksumCalls.push(req);
      firstCall.open();
      const digests = hashRegions(
        secondary.bytes.slice(req.offset, req.offset + req.length),
        req.regionBytes,
      );
      afterHash.shift()?.(req);
      return digests;
    },
  };
  const tracks: TrackRequest[] = [];
  const tracker = {
    track(req: TrackRequest): Promise<unknown> {
      tracks.push(req);
      return Promise.resolve({});
    },
  };
  const verify = new OnlineVerify({
    volume: "vol0",
    sizeBytes,
    regionBytes: region,
    hostId: "h1",
    primary,
    locks,
    backup,
    secondary: secondaryChecksums,
    tracker,
    clock: systemClock,
  }, { chunkBytes: 8 * region, concurrency: 1 });
  return { primary, secondary, locks, backup, checksumCalls, afterHash, firstCall, tracks, verify };
}

/** Overwrites the first 100 bytes of region `i` of `dev` (a short last region only partly). */
function corrupt(dev: MemoryDevice, i: number, byte = 0xee): void {
  dev.bytes.fill(byte, i * region, Math.min(sizeBytes, i * region + 100));
}

Deno.test("online verify finds exactly the differing regions, marks them, and writes nothing", async () => {
  const r = rig();
  for (const i of [3, 4, 17, 40]) corrupt(r.secondary, i);
  const before = { primary: sha(r.primary.bytes), secondary: sha(r.secondary.bytes) };
  const done = await r.verify.start();
  assert.equal(done.state, "done", done.error ?? "");
  const expected = [
    { offset: 3 * region, length: 2 * region },
    { offset: 17 * region, length: region },
    { offset: 40 * region, length: 1000 },
  ];
  assert.deepEqual(done.extents, expected);
  assert.equal(done.extentsTotal, 3);
  assert.equal(done.regionsDiffering, 4);
  assert.equal(done.bytesDiffering, 3 * region + 1000);
  assert.equal(done.regionsCompared, 41);
  assert.equal(done.regionsRechecked, 4);
  assert.equal(done.regionsDone, 41);
  assert.equal(done.bytesDone, sizeBytes);
  assert.equal(done.etaSeconds, 0);
  assert.deepEqual(r.tracks.flatMap((t) => t.extents), expected, "marked at the tracker");
  assert.ok(r.tracks.every((t) => t.volume === "vol0" && t.host === "h1"));
  assert.deepEqual(
    { primary: sha(r.primary.bytes), secondary: sha(r.secondary.bytes) },
    before,
    "a verify writes nothing",
  );
});

Deno.test("online verify of equal images finds and marks nothing", async () => {
  const r = rig();
  const done = await r.verify.start();
  assert.equal(done.state, "done", done.error ?? "");
  assert.equal(done.regionsDiffering, 0);
  assert.equal(done.regionsRechecked, 0);
  assert.deepEqual(done.extents, []);
  assert.deepEqual(r.tracks, []);
});

Deno.test("a region written between the backup's hash and the primary's read is not a difference", async () => {
  const r = rig();
  corrupt(r.secondary, 30);
  // A write to region 2 completes on both sides after the backup hashed chunk 0 and before the
  // primary's chunk 0 is read: the first comparison sees the new primary and the old secondary.
  r.afterHash.push(() => {
    const newer = new Uint8Array(region).fill(0x42);
    r.secondary.bytes.set(newer, 2 * region);
    r.primary.bytes.set(newer, 2 * region);
  });
  const done = await r.verify.start();
  assert.equal(done.state, "done", done.error ?? "");
  assert.equal(done.regionsRechecked, 2, "region 2 looked different at first, and region 30");
  assert.deepEqual(done.extents, [{ offset: 30 * region, length: region }]);
  assert.deepEqual(r.tracks.flatMap((t) => t.extents), done.extents);
});

Deno.test("a region whose write is in flight is re-checked once the write is done", async () => {
  const r = rig();
  // The fork layer's write to region 5, halfway: it holds the range lock and the primary has the
  // new bytes, the backup (the secondary here) not yet.
  const unlock = await r.locks.acquire(5 * region, region);
  const newer = new Uint8Array(region).fill(0x17);
  r.primary.bytes.set(newer, 5 * region);
  const job = r.verify.start();
  await r.firstCall.opened;
  // The first comparison hashes in WebCrypto's threads: let it finish, bounded.
  for (let turns = 0; r.locks.size < 2 && turns < 10_000; turns++) await settled();
  assert.equal(r.locks.size, 2, "the verify waits for the write's lock");
  await settled();
  assert.equal(r.checksumCalls.length, 1, "region 5 is not compared again before the write ends");
  r.secondary.bytes.set(newer, 5 * region);
  unlock();
  const done = await job;
  assert.equal(done.state, "done", done.error ?? "");
  assert.equal(done.regionsRechecked, 1);
  assert.equal(done.regionsDiffering, 0, "the write in flight was no difference");
  assert.deepEqual(r.tracks, []);
});

Deno.test("online verify fails while the backup is offline and marks nothing", async () => {
  const r = rig();
  corrupt(r.secondary, 5);
  r.backup.isOnline = false;
  const done = await r.verify.start();
  assert.equal(done.state, "failed");
  assert.match(done.error ?? "", /Backup went offline during verify of "vol0"/);
  assert.deepEqual(r.checksumCalls, []);
  assert.deepEqual(r.tracks, []);
});
