/**
 * Checksum resync over a memory primary and a memory secondary whose digests a fake backup
 * computes: only differing regions are shipped, the counts say so, the tracker's marks are cleared
 * with the token taken before the walk, a write during the walk is not lost (the range lock), and
 * a failure stops the walk keeping the marks of what was not compared.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { ChecksumResync, type ChecksumResyncOptions } from "../host/resync/checksum_resync.ts";
import { RangeLock } from "../host/fork/range_lock.ts";
import { systemClock } from "../src/clock.ts";
import { decodeRecord, isCycleMarker, type RecordKind } from "../src/journal_record.ts";
import type { ChecksumRequest } from "../src/region_checksums.ts";
import { hashRegions } from "../src/region_checksums.ts";
import { randomBytes, seededRandom } from "../src/random.ts";
import type { ClearRequest, LogPage } from "../src/schemas.ts";
import { gate, settled } from "./support/gate.ts";
import { MemoryDevice } from "./support/memory_device.ts";

const region = 64 * 1024;
const sizeBytes = 40 * region + 1000; // 41 regions, the last one 1000 bytes

function sha(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

function rig(opts: ChecksumResyncOptions = { chunkBytes: 8 * region }) {
  const primary = new MemoryDevice(sizeBytes, (b) => b.set(randomBytes(seededRandom(9), b.length)));
  const secondary = new MemoryDevice(sizeBytes, (b) => b.set(primary.bytes));
  const locks = new RangeLock();
  const backup = {
    isOnline: true,
    offline: [] as unknown[],
    markOffline(err: unknown) {
      this.offline.push(err);
    },
  };
  const shipped: { offset: number; length: number }[] = [];
  /** The cycle markers sent, in order (issue 10). */
  const markers: RecordKind[] = [];
  const writer = {
    failAfter: Infinity,
    writeBatch(_v: string, body: Uint8Array): Promise<unknown> {
      if (this.failAfter-- <= 0) return Promise.reject(new Error("The link broke"));
      for (let pos = 0; pos < body.length;) {
        const r = decodeRecord(body, pos);
        assert.ok(r.ok);
        if (isCycleMarker(r.record.kind)) {
          markers.push(r.record.kind);
          pos = r.next;
          continue;
        }
        assert.equal(r.record.kind, "write");
        shipped.push({ offset: r.record.offset, length: r.record.length });
        secondary.bytes.set(r.record.data, r.record.offset);
        pos = r.next;
      }
      return Promise.resolve({});
    },
  };
  /** Held checksum requests: the digests are computed when the test opens `hold`. */
  const checksumCalls: ChecksumRequest[] = [];
  let hold: Promise<void> | undefined;
  const called = { next: gate() };
  const secondaryChecksums = {
    async checksums(_v: string, req: ChecksumRequest): Promise<Uint8Array> {
      checksumCalls.push(req);
      called.next.open();
      if (hold) await hold;
      return hashRegions(
        secondary.bytes.slice(req.offset, req.offset + req.length),
        req.regionBytes,
      );
    },
  };
  const clears: ClearRequest[] = [];
  const tracker = {
    async *log(name: string): AsyncGenerator<LogPage> {
      yield {
        volume: name,
        regionBytes: region,
        sizeBytes,
        token: "7",
        extents: [],
        nextCursor: null,
      };
    },
    clear(_name: string, req: ClearRequest) {
      clears.push(req);
      return Promise.resolve({ regionsCleared: 0, regionsKept: 0 });
    },
  };
  const forgotten = new Set<number>();
  const marker = {
    forget(run: { first: number; count: number }) {
      for (let i = run.first; i < run.first + run.count; i++) forgotten.add(i);
    },
  };
  const resync = new ChecksumResync({
    volume: "vol0",
    sizeBytes,
    regionBytes: region,
    primary,
    locks,
    backup,
    writer,
    secondary: secondaryChecksums,
    tracker,
    marker,
    clock: systemClock,
  }, opts);
  return {
    primary,
    secondary,
    locks,
    backup,
    writer,
    shipped,
    markers,
    checksumCalls,
    clears,
    forgotten,
    resync,
    called,
    holdChecksums(until: Promise<void>) {
      hold = until;
    },
  };
}

/** Overwrites region `i` of `dev` (a short last region only partly). */
function corrupt(dev: MemoryDevice, i: number, byte = 0xee): void {
  dev.bytes.fill(byte, i * region, Math.min(sizeBytes, i * region + 100));
}

Deno.test("checksum resync ships exactly the differing regions and counts them", async () => {
  const r = rig();
  for (const i of [3, 4, 17, 40]) corrupt(r.secondary, i);
  assert.notEqual(sha(r.primary.bytes), sha(r.secondary.bytes));
  const done = await r.resync.start();
  assert.equal(done.state, "done", done.error ?? "");
  assert.equal(sha(r.primary.bytes), sha(r.secondary.bytes));
  assert.deepEqual(r.shipped, [
    { offset: 3 * region, length: 2 * region },
    { offset: 17 * region, length: region },
    { offset: 40 * region, length: 1000 },
  ]);
  assert.equal(done.mode, "checksum");
  assert.equal(done.regionsCompared, 41);
  assert.equal(done.regionsShipped, 4);
  assert.equal(done.regionsSkipped, 37);
  assert.equal(done.bytesShipped, 3 * region + 1000);
  assert.equal(done.regionsDone, 41);
  assert.equal(done.bytesDone, sizeBytes);
  assert.equal(r.checksumCalls.length, 6, "41 regions in chunks of 8");
  assert.equal(r.forgotten.size, 41, "every region was dropped from the marker's cache");
  assert.deepEqual(r.clears, [{ token: "7", extents: [{ offset: 0, length: sizeBytes }] }]);
});

Deno.test("checksum resync of a volume already in sync ships nothing", async () => {
  const r = rig();
  const done = await r.resync.start();
  assert.equal(done.state, "done", done.error ?? "");
  assert.equal(r.shipped.length, 0);
  assert.equal(done.regionsShipped, 0);
  assert.equal(done.regionsSkipped, 41);
  assert.equal(done.bytesShipped, 0);
});

Deno.test("a write during the comparison of its chunk waits for it and is not lost", async () => {
  const r = rig({ chunkBytes: 8 * region, concurrency: 1 });
  corrupt(r.secondary, 2);
  const release = gate();
  r.holdChecksums(release.opened);
  const job = r.resync.start();
  await r.called.next.opened; // the primary's chunk 0 is being hashed, the backup's is held
  // An application write to region 2, as the fork layer does it in mirror mode: under the range
  // lock, the backup (here the secondary itself) and then the primary.
  const newer = new Uint8Array(region).fill(0x42);
  let written = false;
  const write = (async () => {
    const unlock = await r.locks.acquire(2 * region, region);
    try {
      r.secondary.bytes.set(newer, 2 * region);
      r.primary.bytes.set(newer, 2 * region);
      written = true;
    } finally {
      unlock();
    }
  })();
  await settled();
  assert.equal(written, false, "the write waits for the chunk under comparison");
  release.open();
  const done = await job;
  await write;
  assert.equal(done.state, "done", done.error ?? "");
  assert.deepEqual(r.primary.bytes.subarray(2 * region, 3 * region), newer);
  assert.equal(sha(r.primary.bytes), sha(r.secondary.bytes), "the newer write reached both");
});

Deno.test("a failed shipment stops the walk, takes the backup offline, and clears nothing before a commit", async () => {
  const r = rig({ chunkBytes: 8 * region, concurrency: 1 });
  corrupt(r.secondary, 1);
  corrupt(r.secondary, 20);
  r.writer.failAfter = 2; // the begin and the first chunk's shipment succeed, the third chunk's fails
  const done = await r.resync.start();
  assert.equal(done.state, "failed");
  assert.match(done.error ?? "", /link broke/);
  assert.equal(r.backup.offline.length, 1);
  assert.equal(done.regionsShipped, 1);
  assert.equal(done.regionsCompared, 16, "two chunks completed");
  assert.deepEqual(r.clears, [], "the cycle never committed: every mark stays");
  assert.equal(done.cycle, "abandoned");
  assert.deepEqual(r.markers, ["cycle-begin"]);
  assert.equal(r.checksumCalls.length, 3, "nothing is compared after the failure");

  r.writer.failAfter = Infinity;
  const again = await r.resync.start();
  assert.equal(again.state, "done", again.error ?? "");
  assert.equal(again.regionsShipped, 1, "running again ships only what still differs");
  assert.equal(again.cycle, "committed");
  assert.deepEqual(r.markers, ["cycle-begin", "cycle-begin", "cycle-commit"]);
  assert.equal(r.clears.length, 1, "the marks are cleared once the commit is durable");
  assert.equal(sha(r.primary.bytes), sha(r.secondary.bytes));
});

Deno.test("checksum resync refuses to run while the backup is offline", async () => {
  const r = rig();
  corrupt(r.secondary, 5);
  r.backup.isOnline = false;
  const done = await r.resync.start();
  assert.equal(done.state, "failed");
  assert.match(done.error ?? "", /offline/);
  assert.equal(r.shipped.length, 0);
  assert.deepEqual(r.clears, []);
});
