import assert from "node:assert/strict";
import { decodeRecord } from "../src/journal_record.ts";
import { recordPayloadBytesMax } from "../src/limits.ts";
import { ServiceError } from "../src/errors.ts";
import { BackupBatcher, RecordRefusedError } from "../host/fork/backup_batcher.ts";
import { ForkDevice } from "../host/fork/fork_device.ts";
import { RangeLock } from "../host/fork/range_lock.ts";
import { MemoryDevice } from "./support/memory_device.ts";

const MiB = 1024 * 1024;

/** A backup that decodes every batch it is sent and applies it to its own copy of the volume. */
class RecordingBackup {
  readonly secondary: Uint8Array;
  readonly recordLengths: number[] = [];
  batches = 0;
  isOnline = true;
  offlineReasons: string[] = [];
  constructor(sizeBytes: number) {
    this.secondary = new Uint8Array(sizeBytes);
  }
  writeBatch(_volume: string, body: Uint8Array): Promise<unknown> {
    this.batches++;
    for (let pos = 0; pos < body.length;) {
      const r = decodeRecord(body, pos);
      if (!r.ok) throw new Error(`Batch record at ${pos} is invalid: ${r.reason}`);
      this.secondary.set(r.record.data, r.record.offset);
      this.recordLengths.push(r.record.length);
      pos = r.next;
    }
    return Promise.resolve({});
  }
  markOffline(err: unknown): void {
    this.isOnline = false;
    this.offlineReasons.push((err as Error).message);
  }
}

function pattern(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i += 4096) out.fill((i / 4096 + seed) & 0xff, i, i + 4096);
  return out;
}

function forkRig(volume: string, sizeBytes: number) {
  const primary = new MemoryDevice(sizeBytes);
  const backup = new RecordingBackup(sizeBytes);
  const batcher = new BackupBatcher(backup, volume);
  const marks: string[] = [];
  const fork = new ForkDevice(primary, {
    volume,
    locks: new RangeLock(),
    backup,
    batcher,
    marker: {
      ensureMarked(offset: number, length: number) {
        marks.push(`${offset}+${length}`);
        return Promise.resolve();
      },
    },
  });
  return { primary, backup, batcher, fork, marks };
}

Deno.test("a 40 MiB write is split into records and reaches backup and primary, backup stays online", async () => {
  const size = 48 * MiB;
  const { primary, backup, fork, marks } = forkRig("vol0", size);
  const offset = 4 * MiB;
  const data = pattern(40 * MiB, 7);
  assert.ok(data.length > recordPayloadBytesMax, "the write must be larger than one record");

  await fork.write(offset, data);

  assert.equal(backup.isOnline, true, `backup went offline: ${backup.offlineReasons.join("; ")}`);
  assert.deepEqual(backup.recordLengths, [recordPayloadBytesMax, 40 * MiB - recordPayloadBytesMax]);
  assert.deepEqual(marks, [], "no write fell back to the tracker");
  assert.deepEqual(fork.counters, { viaBackup: 2, viaTracker: 0, failed: 0, primaryFailed: 0 });
  assert.deepEqual(primary.bytes.subarray(offset, offset + data.length), data);
  assert.deepEqual(backup.secondary, primary.bytes, "backup and primary hold the same bytes");
});

Deno.test("a record the batcher refuses fails that write alone and leaves the backup online", async () => {
  // A name the codec refuses stands for any local encoding fault.
  const { primary, backup, fork, marks } = forkRig("x".repeat(65), 1 * MiB);

  await assert.rejects(
    fork.write(0, pattern(8192, 1)),
    (err) => err instanceof ServiceError && err.status === 500 && /refused/.test(err.message),
  );

  assert.equal(backup.isOnline, true);
  assert.equal(backup.batches, 0, "nothing was sent to the backup");
  assert.deepEqual(marks, [], "the refused write is not made safe through the tracker");
  assert.deepEqual(primary.bytes, new Uint8Array(1 * MiB), "primary untouched");
  assert.deepEqual(fork.counters, { viaBackup: 0, viaTracker: 0, failed: 1, primaryFailed: 0 });
});

Deno.test("the batcher refuses an oversized record alone while its neighbours are acknowledged", async () => {
  const backup = new RecordingBackup(64 * MiB);
  const batcher = new BackupBatcher(backup, "vol0");
  const small = batcher.submit({ kind: "write", offset: 0, length: 4096, data: pattern(4096, 2) });
  const big = batcher.submit({
    kind: "write",
    offset: 4096,
    length: recordPayloadBytesMax + 4096,
    data: new Uint8Array(recordPayloadBytesMax + 4096),
  });

  await assert.rejects(big, RecordRefusedError);
  await small;
  assert.deepEqual(backup.recordLengths, [4096]);
});
