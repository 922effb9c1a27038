/**
 * One freeze-and-copy cycle of a cycle-mode volume (issue 10 item 2, seed 003), with
 * copy-before-write in place of the seed's auxiliary volume:
 *
 *   1. freeze, in three steps so that writes are held only for an instant, however large the
 *      marked set: (a) start recording the regions of every write (W), then take and release the
 *      whole volume's range lock (a barrier: every write in flight before the recording began
 *      completes, its mark committed); (b) read the tracker's log, without any lock — its token
 *      and every marked region; (c) take the whole volume's lock again: the frozen set S is the
 *      log's regions ∪ W; stop recording, drop S from the marker's cache, release. The freeze
 *      time T (step c) is the point in time this cycle ships: a region that differs at T was
 *      marked before the barrier (so it is in the log) or written since (so it is in W).
 *   2. send `cycle-begin` (the backup stages everything of the volume from here on).
 *   3. ship S: a walker copies S chunk by chunk, each under its range lock, skipping regions
 *      already shipped; a write to a region of S not yet shipped (the fork layer holds the
 *      write's whole regions locked) first ships the region's current content — still its content
 *      at T, since every write since T to it would have shipped it first — then goes on.
 *      Each region of S is shipped exactly once, so overwrites within a cycle cost nothing.
 *   4. send `cycle-commit` once every region of S is acknowledged: the secondary becomes the
 *      primary as of T, atomically at the backup.
 *   5. clear S at the tracker with the token: a region written since T was marked again after the
 *      token (its cached mark was dropped at the freeze, so the write had to mark it), so it stays
 *      for the next cycle.
 *
 * A failure (link lost, backup offline) abandons the cycle: no commit, no clear; the backup keeps
 * the stage open and the next cycle's begin continues it, shipping its own S ⊇ this S after these
 * copies, so its commit still yields one point in time.
 */
import type { BlockDevice } from "../../src/block_device.ts";
import type { Clock } from "../../src/clock.ts";
import { DirtyBitmap } from "../../src/dirty_bitmap.ts";
import { type Extent, extentOfRegions, type RegionRun, regionsOf } from "../../src/extent.ts";
import type { CycleProgress } from "../../src/host_schemas.ts";
import { encodeRecord } from "../../src/journal_record.ts";
import type { BatchWriter } from "../fork/backup_batcher.ts";
import type { RangeLock } from "../fork/range_lock.ts";
import type { ResyncTracker } from "../resync/resync.ts";
import { RateLimit, type Sleep } from "../resync/rate_limit.ts";
import { ResyncCycle } from "../resync/resync_cycle.ts";
import { concatBytes } from "../../src/bytes.ts";

export interface CycleRunDeps {
  volume: string;
  sizeBytes: number;
  regionBytes: number;
  /** The raw primary (below the fork layer). */
  primary: BlockDevice;
  locks: RangeLock;
  backup: { readonly isOnline: boolean; markOffline(err: unknown): void };
  writer: BatchWriter;
  tracker: Pick<ResyncTracker, "log" | "clear">;
  marker: { forget(run: RegionRun): void };
  clock: Clock;
  /** How the walker's rate bound waits (default: the process's timers). */
  sleep?: Sleep;
}

export interface CycleRunOptions {
  /** Bytes the walker ships per request (whole regions). */
  chunkBytes: number;
  /** Chunks shipped at once by the walker. */
  concurrency: number;
  /**
   * The walker's rate bound in bytes per second from the cycle's start (0: none; rate_limit.ts);
   * copy-before-write is neither paced nor counted.
   */
  bytesPerSecMax: number;
  /** Extents per log page and per clear request. */
  pageExtentsMax: number;
}

export class CycleRun {
  /** S minus what was shipped: what the walker and copy-before-write still owe. */
  readonly #pending = new DirtyBitmap();
  #token = "";
  /** The freeze time T: the point in time this cycle ships (0 before the freeze). */
  frozenAt = 0;
  #frozenExtents: Extent[] = [];
  /** W: regions written since the freeze began, until the lock of its last step (1a to 1c). */
  #written: DirtyBitmap | undefined;
  #failure: unknown;
  /** Resolves true once the begin is durable, false if it failed: copies wait for it. */
  readonly #begun: Promise<boolean>;
  #settleBegun!: (ok: boolean) => void;
  readonly #stage: ResyncCycle;

  constructor(
    private readonly deps: CycleRunDeps,
    private readonly opts: CycleRunOptions,
    private readonly progress: CycleProgress,
  ) {
    this.#stage = new ResyncCycle(
      { volume: deps.volume, writer: deps.writer, backup: deps.backup, staged: true },
      progress,
    );
    progress.cycle = undefined;
    this.#begun = new Promise((resolve) => (this.#settleBegun = resolve));
  }

  /** Regions still to ship. */
  get pendingRegions(): number {
    return this.#pending.size;
  }

  /**
   * Step 1; resolves with the number of regions frozen (0: nothing to ship this time). The run
   * must already be where the fork layer finds it: a write waiting for the freeze's lock runs
   * before this method's caller resumes.
   */
  async freeze(): Promise<number> {
    const { locks, sizeBytes, marker, regionBytes, clock } = this.deps;
    this.#written = new DirtyBitmap();
    (await locks.acquire(0, sizeBytes))(); // 1a: the barrier
    let log: { token: string; extents: Extent[] };
    try {
      log = await this.#readLog(); // 1b
    } catch (err) {
      this.#written = undefined;
      this.abandon(err);
      throw err;
    }
    const release = await locks.acquire(0, sizeBytes); // 1c
    const frozenAt = this.frozenAt = clock.now();
    try {
      this.#token = log.token;
      for (const e of log.extents) this.#pending.set(regionsOf(e.offset, e.length, regionBytes));
      for (const run of this.#written.runs()) this.#pending.set(run);
      this.#written = undefined;
      for (const run of this.#pending.runs()) marker.forget(run);
    } finally {
      release();
      this.progress.freezeMs = clock.now() - frozenAt;
    }
    this.#frozenExtents = [...this.#pending.runs()].map((r) =>
      extentOfRegions(r, regionBytes, sizeBytes)
    );
    this.progress.regionsTotal = this.#pending.size;
    this.progress.bytesTotal = this.#frozenExtents.reduce((n, e) => n + e.length, 0);
    return this.#pending.size;
  }

  /** The tracker's log: its token and every marked extent. */
  async #readLog(): Promise<{ token: string; extents: Extent[] }> {
    let token = "";
    const extents: Extent[] = [];
    const pages = this.deps.tracker.log(this.deps.volume, { limit: this.opts.pageExtentsMax });
    for await (const page of pages) {
      token = page.token;
      extents.push(...page.extents);
    }
    return { token, extents };
  }

  /** Step 2: opens (or continues) the stage at the backup; copies wait for it. */
  async begin(): Promise<void> {
    this.progress.cycle = "opening";
    try {
      await this.#stage.begin();
      this.#settleBegun(true);
    } catch (err) {
      this.abandon(err);
      throw err;
    }
  }

  /**
   * Copy-before-write: the fork layer calls this for every write while the cycle runs, holding
   * the write's whole regions locked. Ships the regions of S the write touches that were not
   * shipped yet; never throws (a failed ship abandons the cycle, and the write goes on).
   */
  async beforeWrite(offset: number, length: number): Promise<void> {
    const run = regionsOf(offset, length, this.deps.regionBytes);
    this.#written?.set(run); // before any await: the freeze's last step must see it
    if (this.#failure !== undefined || !this.#owes(run)) return;
    if (!(await this.#begun)) return;
    const shipped = await this.#ship(run);
    this.progress.regionsCopiedBeforeWrite += shipped;
  }

  /** Step 3's walker: ships what S still owes, chunk by chunk under each chunk's range lock. */
  async walk(): Promise<void> {
    const chunkRegions = Math.max(1, Math.floor(this.opts.chunkBytes / this.deps.regionBytes));
    const chunks: RegionRun[] = [];
    for (const r of this.#pending.runs()) {
      for (let first = r.first; first < r.first + r.count; first += chunkRegions) {
        chunks.push({ first, count: Math.min(chunkRegions, r.first + r.count - first) });
      }
    }
    const { clock, sleep } = this.deps;
    const rate = new RateLimit(
      this.progress.startedAt ?? clock.now(),
      this.opts.bytesPerSecMax,
      clock,
      sleep,
    );
    let next = 0;
    const worker = async () => {
      while (this.#failure === undefined && next < chunks.length) {
        const run = chunks[next++];
        if (!this.#owes(run)) continue;
        const e = extentOfRegions(run, this.deps.regionBytes, this.deps.sizeBytes);
        await rate.take(e.length);
        const release = await this.deps.locks.acquire(e.offset, e.length);
        try {
          await this.#ship(run);
        } finally {
          release();
        }
      }
    };
    await Promise.all(Array.from({ length: this.opts.concurrency }, worker));
    if (this.#failure !== undefined) throw this.#failure;
  }

  /** Step 4, then 5: commits the stage and clears S at the tracker with the freeze's token. */
  async commit(): Promise<void> {
    if (this.#failure !== undefined) throw this.#failure;
    if (this.#pending.size !== 0) {
      throw new Error(
        `Cycle of "${this.deps.volume}" cannot commit: ${this.#pending.size} region(s) not shipped`,
      );
    }
    await this.#stage.commit();
  }

  /** Step 5: clears the frozen set with the freeze's token; regions written since stay marked. */
  async clear(): Promise<void> {
    const { tracker, volume } = this.deps;
    const all = this.#frozenExtents;
    for (let i = 0; i < all.length; i += this.opts.pageExtentsMax) {
      const extents = all.slice(i, i + this.opts.pageExtentsMax);
      const res = await tracker.clear(volume, { token: this.#token, extents });
      this.progress.regionsKept += res.regionsKept;
    }
  }

  /** The cycle failed before its commit: the stage stays open, the marks stay. */
  abandon(err: unknown): void {
    this.#fail(err);
    this.#settleBegun(false);
    if (this.progress.cycle !== undefined) this.#stage.abandon();
  }

  #owes(run: RegionRun): boolean {
    for (let r = run.first; r < run.first + run.count; r++) if (this.#pending.has(r)) return true;
    return false;
  }

  /**
   * Ships the regions of `run` still owed, a batch per `chunkBytes` (adjacent regions merged into
   * one record), so a long write or trim never reads more than a chunk at once; the caller holds a
   * range lock covering them. Resolves with the regions shipped (stops at the first failure).
   */
  async #ship(run: RegionRun): Promise<number> {
    const chunkRegions = Math.max(1, Math.floor(this.opts.chunkBytes / this.deps.regionBytes));
    let shipped = 0;
    let batch: RegionRun[] = [];
    let batchRegions = 0;
    for (let r = run.first; r <= run.first + run.count; r++) {
      const owed = r < run.first + run.count && this.#pending.has(r);
      if (owed) {
        const last = batch.at(-1);
        if (last && last.first + last.count === r) last.count++;
        else batch.push({ first: r, count: 1 });
        batchRegions++;
      }
      const end = r === run.first + run.count;
      if (batchRegions > 0 && (batchRegions === chunkRegions || end)) {
        if (!(await this.#shipBatch(batch))) return shipped;
        shipped += batchRegions;
        batch = [];
        batchRegions = 0;
      }
    }
    return shipped;
  }

  /** One batch of owed runs: read, send, and on acknowledgement no longer owed. */
  async #shipBatch(runs: RegionRun[]): Promise<boolean> {
    const { primary, writer, volume, regionBytes, sizeBytes, backup } = this.deps;
    try {
      const records: Uint8Array[] = [];
      let bytes = 0;
      for (const o of runs) {
        const e = extentOfRegions(o, regionBytes, sizeBytes);
        const data = await primary.read(e.offset, e.length);
        records.push(encodeRecord({ kind: "write", volume, ...e, data }));
        bytes += e.length;
      }
      if (!backup.isOnline) throw new Error(`Backup went offline during a cycle of "${volume}"`);
      try {
        await writer.writeBatch(volume, concatSingle(records));
      } catch (err) {
        if (this.#failure === undefined) backup.markOffline(err);
        throw err;
      }
      let regions = 0;
      for (const o of runs) {
        this.#pending.clear(o);
        regions += o.count;
      }
      this.progress.regionsDone += regions;
      this.progress.bytesDone += bytes;
      return true;
    } catch (err) {
      this.#fail(err);
      return false;
    }
  }

  #fail(err: unknown): void {
    this.#failure ??= err;
  }
}

/** `parts` as one array; a lone part is returned as is, not copied. */
function concatSingle(parts: Uint8Array[]): Uint8Array {
  return parts.length === 1 ? parts[0] : concatBytes(parts);
}
