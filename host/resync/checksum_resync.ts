/**
 * Checksum resync (DRBD's csums-alg): the repair when the tracker's record cannot be trusted to
 * cover every difference (the record was lost, or came from another history). It walks EVERY
 * region of the volume, compares the SHA-256 of the primary's region with the backup's digest of
 * the secondary's, and ships only the regions that differ; then it clears the tracker's marks with
 * a token taken before the walk began, as resync.ts does, and the volume is in sync.
 *
 * Each chunk is handled under its range lock, after dropping its regions from the marker's cache
 * (resync.ts's rule): an application write to the chunk waits until the chunk's comparison and
 * shipment are acknowledged, so the primary bytes that were hashed are the bytes shipped, and a
 * write after it either goes to the backup or — backup offline — marks the region again with a
 * sequence newer than the token, so the final clear keeps it. The backup applies everything it
 * has taken before hashing (backup/routes/checksums.ts), so a write acknowledged before the lock
 * was taken is in its digest.
 *
 * Pipelining: the backup's digests of a chunk are requested before the primary's chunk is read
 * and hashed, and `concurrency` chunks (2 by default) are in flight at once, so hashing one chunk
 * overlaps the round trip of another. A failure stops the walk and clears only the chunks that
 * completed; running again walks everything again, and ships only what still differs.
 *
 * Issue 10: the walk is one cycle (resync_cycle.ts), like a plain resync: the backup stages what
 * is shipped and every write meanwhile, and the marks are cleared only once the commit is
 * durable (a failed walk clears nothing). The backup's digests are of its secondary, without the
 * stage, and a region where the stage holds a record gets a digest that matches nothing
 * (backup/routes/checksums.ts): it is shipped again (extra bytes, never a wrong result, since the
 * stage is applied in order before the later copy). Comparing the file alone would leave a staged
 * write the primary refused unshipped, and the commit would then apply it.
 */
import type { BlockDevice } from "../../src/block_device.ts";
import type { Clock } from "../../src/clock.ts";
import { type Extent, regionsOf } from "../../src/extent.ts";
import type { ResyncProgress, ResyncState } from "../../src/host_schemas.ts";
import { encodedRecordBytes, encodeRecord } from "../../src/journal_record.ts";
import { trackExtentsMax } from "../../src/schemas.ts";
import type { BatchWriter } from "../fork/backup_batcher.ts";
import type { RangeLock } from "../fork/range_lock.ts";
import type { ResyncTracker } from "./resync.ts";
import {
  compareSpan,
  finishRate,
  OneAtATime,
  type SecondaryChecksums,
  walkChunks,
  type WalkOptions,
  walkPacing,
  walkProgressStart,
  withLiveRate,
} from "./region_walk.ts";
import { RateLimit, type Sleep } from "./rate_limit.ts";
import { ResyncCycle } from "./resync_cycle.ts";

export { checksumChunkBytesDefault, type SecondaryChecksums } from "./region_walk.ts";

export interface ChecksumResyncDeps {
  volume: string;
  sizeBytes: number;
  regionBytes: number;
  /** The raw primary (below the fork layer). */
  primary: BlockDevice;
  locks: RangeLock;
  backup: { readonly isOnline: boolean; markOffline(err: unknown): void };
  /** Where differing regions go: the same path as resync copies. */
  writer: BatchWriter;
  /** Absent when the backup client offers no checksums: the job then fails, saying so. */
  secondary: SecondaryChecksums | undefined;
  tracker: Pick<ResyncTracker, "log" | "clear">;
  marker: { forget(run: { first: number; count: number }): void };
  clock: Clock;
  /** How the rate bound waits (default: the process's timers); tests step it by hand. */
  sleep?: Sleep;
}

/** Chunk size, chunks in flight and rate bound of the walk; and whether it is one cycle. */
export interface ChecksumResyncOptions extends WalkOptions {
  /** False: ship straight into the secondary, without a cycle (resync.ts `staged`). */
  staged?: boolean;
}

export class ChecksumResync {
  #progress: ResyncProgress;
  readonly #job = new OneAtATime<ResyncProgress>();
  readonly #pacing: ReturnType<typeof walkPacing>;
  readonly #staged: boolean;

  constructor(private readonly deps: ChecksumResyncDeps, opts: ChecksumResyncOptions = {}) {
    this.#pacing = walkPacing(deps.regionBytes, opts);
    this.#staged = opts.staged ?? true;
    this.#progress = this.#fresh("idle");
  }

  get progress(): ResyncProgress {
    return withLiveRate(this.#progress, this.deps.clock);
  }

  get running(): boolean {
    return this.#job.running;
  }

  /** Starts a checksum resync unless one runs; returns a promise of its final progress. */
  start(): Promise<ResyncProgress> {
    return this.#job.start(() => this.#run());
  }

  #fresh(state: ResyncState): ResyncProgress {
    const { volume, sizeBytes, regionBytes, clock } = this.deps;
    return {
      ...walkProgressStart(volume, sizeBytes, regionBytes, state, clock),
      regionsKept: 0,
      mode: "checksum",
      regionsCompared: 0,
      regionsShipped: 0,
      regionsSkipped: 0,
      bytesShipped: 0,
    };
  }

  async #run(): Promise<ResyncProgress> {
    const { tracker, volume } = this.deps;
    const p = this.#progress = this.#fresh("running");
    const { clock, sleep } = this.deps;
    const rate = new RateLimit(p.startedAt!, this.#pacing.bytesPerSecMax, clock, sleep);
    const { writer, backup } = this.deps;
    const cycle = new ResyncCycle({ volume, writer, backup, staged: this.#staged }, p);
    try {
      if (this.deps.secondary === undefined) {
        throw new Error(`The backup client of "${volume}" offers no region checksums`);
      }
      // Taken before any region is compared: marks made after it survive the clear.
      const token = await this.#token();
      await cycle.begin();
      const { done: compared, failure } = await walkChunks(
        this.deps.sizeBytes,
        this.#pacing.chunkBytes,
        this.#pacing.concurrency,
        (chunk) => this.#compare(chunk, rate),
      );
      // Staged, nothing is cleared before the commit is durable; a failed walk clears nothing.
      if (this.#staged && failure !== undefined) throw failure;
      await cycle.commit();
      for (let i = 0; i < compared.length; i += trackExtentsMax) {
        const extents = compared.slice(i, i + trackExtentsMax);
        const res = await tracker.clear(volume, { token, extents });
        p.regionsKept += res.regionsKept;
      }
      if (failure !== undefined) throw failure;
      p.state = "done";
    } catch (err) {
      cycle.abandon();
      p.state = "failed";
      p.error = err instanceof Error ? err.message : String(err);
    }
    finishRate(p, this.deps.clock);
    return { ...p };
  }

  /** The tracker's current token for the volume (its first log page names it). */
  async #token(): Promise<string> {
    for await (const page of this.deps.tracker.log(this.deps.volume, { limit: 1 })) {
      return page.token;
    }
    throw new Error(`The tracker's log of "${this.deps.volume}" has no page`);
  }

  /** Compares one chunk under its range lock and ships the regions that differ. */
  async #compare(chunk: Extent, rate: RateLimit): Promise<void> {
    const { locks, writer, marker, backup, volume, regionBytes } = this.deps;
    if (!backup.isOnline) {
      throw new Error(`Backup went offline during checksum resync of "${volume}"`);
    }
    await rate.take(chunk.length);
    const p = this.#progress;
    const run = regionsOf(chunk.offset, chunk.length, regionBytes);
    let shipped = { regions: 0, bytes: 0 };
    const release = await locks.acquire(chunk.offset, chunk.length);
    try {
      marker.forget(run);
      const { data, runs } = await compareSpan(
        { ...this.deps, secondary: this.deps.secondary! },
        chunk,
      );
      if (runs.length > 0) {
        const batch = this.#batchOf(chunk, data, runs);
        shipped = batch;
        try {
          await writer.writeBatch(volume, batch.body);
        } catch (err) {
          backup.markOffline(err);
          throw err;
        }
      }
    } finally {
      release();
    }
    p.bytesDone += chunk.length;
    p.regionsDone += run.count;
    p.regionsCompared! += run.count;
    p.regionsShipped! += shipped.regions;
    p.regionsSkipped! += run.count - shipped.regions;
    p.bytesShipped! += shipped.bytes;
  }

  /** One batch with a write record per run of differing regions of `chunk` (`data` its bytes). */
  #batchOf(
    chunk: Extent,
    data: Uint8Array,
    runs: readonly { first: number; count: number }[],
  ): { body: Uint8Array; regions: number; bytes: number } {
    const { volume, regionBytes } = this.deps;
    const records = runs.map((r) => {
      const start = r.first * regionBytes;
      const end = Math.min(chunk.length, (r.first + r.count) * regionBytes);
      return {
        kind: "write" as const,
        volume,
        offset: chunk.offset + start,
        length: end - start,
        data: data.subarray(start, end),
      };
    });
    let total = 0;
    for (const rec of records) total += encodedRecordBytes(volume, "write", rec.length);
    const body = new Uint8Array(total);
    let pos = 0;
    for (const rec of records) pos += encodeRecord(rec, body, pos).length;
    return {
      body,
      regions: runs.reduce((n, r) => n + r.count, 0),
      bytes: records.reduce((n, r) => n + r.length, 0),
    };
  }
}
