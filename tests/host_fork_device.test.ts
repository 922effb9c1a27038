import assert from "node:assert/strict";
import type { BlockDevice } from "../src/block_device.ts";
import type { MirrorRecord } from "../host/fork/backup_batcher.ts";
import { ForkDevice, type ForkPaths } from "../host/fork/fork_device.ts";
import { RangeLock } from "../host/fork/range_lock.ts";
import { ServiceError } from "../src/errors.ts";
import { settled } from "./support/gate.ts";

/** A primary in memory that logs each call, so the fork order can be proved from the trace. */
class TracedPrimary implements BlockDevice {
  readonly bytes: Uint8Array;
  constructor(readonly sizeBytes: number, private readonly trace: string[]) {
    this.bytes = new Uint8Array(sizeBytes);
  }
  read(offset: number, length: number) {
    return Promise.resolve(this.bytes.slice(offset, offset + length));
  }
  write(offset: number, data: Uint8Array) {
    this.trace.push(`primary.write ${offset}+${data.length}`);
    this.bytes.set(data, offset);
    return Promise.resolve();
  }
  flush() {
    return Promise.resolve();
  }
  trim(offset: number, length: number) {
    return this.writeZeroes(offset, length);
  }
  writeZeroes(offset: number, length: number) {
    this.trace.push(`primary.zero ${offset}+${length}`);
    this.bytes.fill(0, offset, offset + length);
    return Promise.resolve();
  }
  close() {
    return Promise.resolve();
  }
}

interface Rig {
  trace: string[];
  primary: TracedPrimary;
  fork: ForkDevice;
  paths: ForkPaths & { backup: { isOnline: boolean; markOffline(err: unknown): void } };
  failBackup: boolean;
  failTracker: boolean;
  /** When set, backup submits wait on it. */
  gate?: Promise<void>;
}

function rig(online: boolean): Rig {
  const trace: string[] = [];
  const primary = new TracedPrimary(1 << 20, trace);
  const r = { trace, primary, failBackup: false, failTracker: false } as Rig;
  r.paths = {
    volume: "vol0",
    locks: new RangeLock(),
    backup: {
      isOnline: online,
      markOffline(err: unknown) {
        trace.push(`backup.offline ${(err as Error).message}`);
        this.isOnline = false;
      },
    },
    batcher: {
      async submit(rec: MirrorRecord) {
        trace.push(`backup.submit ${rec.kind} ${rec.offset}+${rec.length}`);
        if (r.gate) await r.gate;
        if (r.failBackup) throw new Error("connection refused");
      },
    },
    marker: {
      ensureMarked(offset: number, length: number) {
        trace.push(`tracker.mark ${offset}+${length}`);
        return r.failTracker ? Promise.reject(new Error("tracker down")) : Promise.resolve();
      },
    },
  };
  r.fork = new ForkDevice(primary, r.paths);
  return r;
}

Deno.test("fork layer sends a write to the backup before the primary when the backup is online", async () => {
  const r = rig(true);
  await r.fork.write(4096, new Uint8Array(100).fill(7));
  assert.deepEqual(r.trace, ["backup.submit write 4096+100", "primary.write 4096+100"]);
  assert.equal(r.primary.bytes[4096], 7);
  assert.deepEqual(r.fork.counters, { viaBackup: 1, viaTracker: 0, failed: 0, primaryFailed: 0 });
});

Deno.test("fork layer marks the tracker before the primary when the backup is offline", async () => {
  const r = rig(false);
  await r.fork.write(10, new Uint8Array(5).fill(1));
  assert.deepEqual(r.trace, ["tracker.mark 10+5", "primary.write 10+5"]);
});

Deno.test("a failed backup send marks it offline and falls back to the tracker", async () => {
  const r = rig(true);
  r.failBackup = true;
  await r.fork.write(0, new Uint8Array(8));
  assert.deepEqual(r.trace, [
    "backup.submit write 0+8",
    "backup.offline connection refused",
    "tracker.mark 0+8",
    "primary.write 0+8",
  ]);
  assert.equal(r.paths.backup.isOnline, false);
});

Deno.test("with backup and tracker both failing the write fails and the primary is untouched", async () => {
  const r = rig(true);
  r.failBackup = true;
  r.failTracker = true;
  await assert.rejects(
    () => r.fork.write(512, new Uint8Array(512).fill(9)),
    (err: unknown) => {
      assert.ok(err instanceof ServiceError);
      assert.equal(err.status, 503);
      assert.match(err.message, /volume "vol0" at 512\+512 failed, primary untouched/);
      assert.match(err.message, /tracker failed: tracker down/);
      return true;
    },
  );
  assert.ok(!r.trace.some((t) => t.startsWith("primary")), r.trace.join("\n"));
  assert.ok(r.primary.bytes.every((b) => b === 0));
  assert.equal(r.fork.counters.failed, 1);
});

Deno.test("trim and write-zeroes are forked as zero records", async () => {
  const r = rig(true);
  r.primary.bytes.fill(5);
  await r.fork.trim(0, 1000);
  await r.fork.writeZeroes(2000, 10);
  assert.deepEqual(r.trace, [
    "backup.submit zero 0+1000",
    "primary.zero 0+1000",
    "backup.submit zero 2000+10",
    "primary.zero 2000+10",
  ]);
});

Deno.test("overlapping writes are ordered by the range lock; disjoint ones are not", async () => {
  const r = rig(true);
  let open!: () => void;
  r.gate = new Promise((resolve) => (open = resolve));
  const first = r.fork.write(0, new Uint8Array(100).fill(1));
  const overlapping = r.fork.write(50, new Uint8Array(100).fill(2));
  const disjoint = r.fork.write(1000, new Uint8Array(10).fill(3));
  await settled();
  // The disjoint write reached the backup; the overlapping one waits for the first to finish.
  assert.deepEqual(r.trace, ["backup.submit write 0+100", "backup.submit write 1000+10"]);
  open();
  await Promise.all([first, overlapping, disjoint]);
  assert.ok(
    r.trace.indexOf("primary.write 0+100") < r.trace.indexOf("backup.submit write 50+100"),
    r.trace.join("\n"),
  );
  assert.equal(r.primary.bytes[60], 2, "the later write wins on the overlap");
  assert.equal(r.primary.bytes[10], 1);
});
