/**
 * Coalesces concurrent mirror writes of one volume into backup batches, so that many application
 * writes share one HTTP request and one journal fsync at the backup.
 *
 * A batch leaves as soon as a sending slot is free; while `inflightBatchesMax` batches are in
 * flight, new records queue and leave together in the next batch (bounded by `batchBytesMax` and
 * `batchRecordsMax`). Records of one batch share its fate: every record is acknowledged, or every
 * submit rejects. Overlapping writes are never in flight together (the range lock orders them), so
 * two batches in flight may reach the journal in either order.
 */
import {
  checkRecord,
  encodedRecordBytes,
  encodeRecord,
  type RecordKind,
} from "../../src/journal_record.ts";
import { hostBatchBytesMax, hostBatchQueueBytesMax } from "../../src/limits.ts";

/** What the batcher needs of the backup client. */
export interface BatchWriter {
  writeBatch(volume: string, body: Uint8Array): Promise<unknown>;
}

/** One mirror write: bytes for a write, none for a zero (trim / write-zeroes). */
export interface MirrorRecord {
  kind: RecordKind;
  offset: number;
  length: number;
  data?: Uint8Array;
}

/**
 * A record the batcher refused or could not encode: a fault of this host's write, not of the
 * backup, so it fails that write alone and must not take the backup offline.
 */
export class RecordRefusedError extends Error {
  override name = "RecordRefusedError";
}

export interface BatcherOptions {
  /** Largest batch body sent at once. */
  batchBytesMax?: number;
  /** Most records in one batch. */
  batchRecordsMax?: number;
  /** Batches awaiting the backup's answer at once. */
  inflightBatchesMax?: number;
  /** Bytes queued before submit makes its caller wait. */
  queueBytesMax?: number;
}

interface Pending {
  rec: MirrorRecord;
  bytes: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class BackupBatcher {
  readonly #queue: Pending[] = [];
  #queuedBytes = 0;
  #inflight = 0;
  #spaceWaiters: (() => void)[] = [];
  readonly #batchBytesMax: number;
  readonly #batchRecordsMax: number;
  readonly #inflightMax: number;
  readonly #queueBytesMax: number;
  /** Batches sent so far (for metrics and tests). */
  batchesSent = 0;
  /** Records sent so far. */
  recordsSent = 0;

  constructor(
    private readonly writer: BatchWriter,
    readonly volume: string,
    opts: BatcherOptions = {},
  ) {
    this.#batchBytesMax = opts.batchBytesMax ?? hostBatchBytesMax;
    this.#batchRecordsMax = opts.batchRecordsMax ?? 512;
    this.#inflightMax = opts.inflightBatchesMax ?? 4;
    this.#queueBytesMax = opts.queueBytesMax ?? hostBatchQueueBytesMax;
  }

  /**
   * Resolves once the backup acknowledged (journaled durably) the batch holding `rec`. A record
   * the codec refuses (e.g. a payload over recordPayloadBytesMax) rejects with RecordRefusedError
   * before it is queued, so it never shares the fate of other writes' records.
   */
  async submit(rec: MirrorRecord): Promise<void> {
    try {
      checkRecord({ ...rec, volume: this.volume });
    } catch (err) {
      throw new RecordRefusedError(
        `Record ${rec.kind} ${rec.offset}+${rec.length} of volume "${this.volume}" refused: ${
          (err as Error).message
        }`,
      );
    }
    const bytes = encodedRecordBytes(this.volume, rec.kind, rec.length);
    while (this.#queuedBytes > 0 && this.#queuedBytes + bytes > this.#queueBytesMax) {
      await new Promise<void>((resolve) => this.#spaceWaiters.push(resolve));
    }
    const done = new Promise<void>((resolve, reject) => {
      this.#queue.push({ rec, bytes, resolve, reject });
    });
    this.#queuedBytes += bytes;
    this.#pump();
    return done;
  }

  #pump(): void {
    while (this.#inflight < this.#inflightMax && this.#queue.length > 0) {
      const batch = this.#take();
      this.#inflight++;
      this.#send(batch).finally(() => {
        this.#inflight--;
        this.#pump();
      });
    }
  }

  /** Takes the next batch off the queue: at least one record, then up to the bounds. */
  #take(): Pending[] {
    const batch: Pending[] = [];
    let bytes = 0;
    while (this.#queue.length > 0 && batch.length < this.#batchRecordsMax) {
      const next = this.#queue[0];
      if (batch.length > 0 && bytes + next.bytes > this.#batchBytesMax) break;
      batch.push(this.#queue.shift()!);
      bytes += next.bytes;
    }
    this.#queuedBytes -= bytes;
    const waiters = this.#spaceWaiters.splice(0);
    for (const wake of waiters) wake();
    return batch;
  }

  async #send(batch: Pending[]): Promise<void> {
    let body: Uint8Array;
    try {
      body = this.#encode(batch);
    } catch (err) {
      // Records were checked on submit; failing here is this host's bug, never the backup's.
      const refused = new RecordRefusedError(
        `Batch of ${batch.length} records of volume "${this.volume}" could not be encoded: ${
          (err as Error).message
        }`,
      );
      for (const p of batch) p.reject(refused);
      return;
    }
    try {
      this.batchesSent++;
      this.recordsSent += batch.length;
      await this.writer.writeBatch(this.volume, body);
      for (const p of batch) p.resolve();
    } catch (err) {
      for (const p of batch) p.reject(err);
    }
  }

  #encode(batch: Pending[]): Uint8Array {
    const total = batch.reduce((n, p) => n + p.bytes, 0);
    const body = new Uint8Array(total);
    let pos = 0;
    for (const { rec, bytes } of batch) {
      encodeRecord({ ...rec, volume: this.volume }, body, pos);
      pos += bytes;
    }
    return body;
  }
}
