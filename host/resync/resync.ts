/**
 * Resync (seed 001's data mirror reconstruction, fig. 5): copies every region the tracker holds
 * marked from the primary to the backup, then clears those marks with the log's token.
 *
 * Each chunk is copied under its range lock, after dropping its regions from the marker's cache,
 * so an application write to the same regions either lands before the copy (and is copied) or
 * after it (and, with the backup offline, marks the region again with a newer sequence than the
 * token, so the clear keeps it dirty). Marks are cleared only after the backup acknowledged the
 * copy. A failure stops the job and leaves every uncopied mark in place: running again resumes.
 *
 * Issue 10: the job is one cycle (resync_cycle.ts). The backup stages the copies and every write
 * mirrored meanwhile and applies them at the commit, so the marks of every page are kept until
 * the commit is durable and cleared only then (a failure clears nothing: the next run copies the
 * marked regions again into the continued stage).
 */
import type { ResyncProgress, ResyncState } from "../../src/host_schemas.ts";
import type { BlockDevice } from "../../src/block_device.ts";
import type { Clock } from "../../src/clock.ts";
import { type Extent, mergeExtents, regionsOf } from "../../src/extent.ts";
import { encodeRecord } from "../../src/journal_record.ts";
import type { ClearRequest, ClearResponse, LogPage, VolumeInfo } from "../../src/schemas.ts";
import type { BatchWriter } from "../fork/backup_batcher.ts";
import type { RangeLock } from "../fork/range_lock.ts";
import { RateLimit, type Sleep } from "./rate_limit.ts";
import { ResyncCycle } from "./resync_cycle.ts";

export interface ResyncTracker {
  getVolume(name: string): Promise<VolumeInfo>;
  log(name: string, query?: { limit?: number }): AsyncGenerator<LogPage>;
  clear(name: string, req: ClearRequest): Promise<ClearResponse>;
}

export interface ResyncDeps {
  volume: string;
  regionBytes: number;
  /** The raw primary (below the fork layer). */
  primary: BlockDevice;
  locks: RangeLock;
  backup: { readonly isOnline: boolean; markOffline(err: unknown): void };
  writer: BatchWriter;
  tracker: ResyncTracker;
  marker: { forget(run: { first: number; count: number }): void };
  clock: Clock;
  /** How the rate bound waits (default: the process's timers); tests step it by hand. */
  sleep?: Sleep;
}

export interface ResyncOptions {
  /** Bytes copied per backup request; rounded to whole regions. */
  chunkBytes?: number;
  /** Chunks copied at once. */
  concurrency?: number;
  /** Copy rate bound in bytes per second, counted from the start (rate_limit.ts); 0 = unbounded. */
  bytesPerSecMax?: number;
  /** Extents per log page (also bounds each clear request). */
  logPageExtentsMax?: number;
  /**
   * False: copy straight into the secondary, without a cycle (before issue 10): the secondary is
   * a mix of old and new regions until the resync ends. For comparison in the bench and tests.
   */
  staged?: boolean;
}

export type { ResyncProgress, ResyncState } from "../../src/host_schemas.ts";

export class Resync {
  #progress: ResyncProgress;
  #running: Promise<ResyncProgress> | undefined;
  readonly #chunkBytes: number;
  readonly #concurrency: number;
  readonly #bytesPerSecMax: number;
  readonly #pageExtentsMax: number;
  readonly #staged: boolean;

  constructor(private readonly deps: ResyncDeps, opts: ResyncOptions = {}) {
    const regions = Math.max(1, Math.floor((opts.chunkBytes ?? 1024 * 1024) / deps.regionBytes));
    this.#chunkBytes = regions * deps.regionBytes;
    this.#concurrency = opts.concurrency ?? 4;
    this.#bytesPerSecMax = opts.bytesPerSecMax ?? 0;
    this.#pageExtentsMax = opts.logPageExtentsMax ?? 1024;
    this.#staged = opts.staged ?? true;
    this.#progress = this.#fresh("idle");
  }

  get progress(): ResyncProgress {
    const p = { ...this.#progress };
    if (p.state === "running" && p.startedAt !== null) {
      const seconds = Math.max(0.001, (this.deps.clock.now() - p.startedAt) / 1000);
      p.bytesPerSec = Math.round(p.bytesDone / seconds);
      const left = Math.max(0, p.bytesTotal - p.bytesDone);
      p.etaSeconds = p.bytesPerSec > 0 ? Math.ceil(left / p.bytesPerSec) : null;
    }
    return p;
  }

  get running(): boolean {
    return this.#running !== undefined;
  }

  /** Starts a resync unless one runs; returns a promise of its final progress. */
  start(): Promise<ResyncProgress> {
    this.#running ??= this.#run().finally(() => (this.#running = undefined));
    return this.#running;
  }

  #fresh(state: ResyncState): ResyncProgress {
    return {
      volume: this.deps.volume,
      state,
      startedAt: state === "idle" ? null : this.deps.clock.now(),
      finishedAt: null,
      regionsTotal: 0,
      regionsDone: 0,
      bytesTotal: 0,
      bytesDone: 0,
      regionsKept: 0,
      bytesPerSec: 0,
      etaSeconds: null,
      error: null,
    };
  }

  async #run(): Promise<ResyncProgress> {
    const { tracker, volume } = this.deps;
    const p = this.#progress = this.#fresh("running");
    const { clock, sleep } = this.deps;
    const rate = new RateLimit(p.startedAt!, this.#bytesPerSecMax, clock, sleep);
    const { writer, backup } = this.deps;
    const cycle = new ResyncCycle({ volume, writer, backup, staged: this.#staged }, p);
    try {
      const info = await tracker.getVolume(volume);
      p.regionsTotal = info.dirtyRegions;
      p.bytesTotal = info.dirtyBytes;
      await cycle.begin();
      // Staged: each page's copied extents and token, cleared once the commit is durable.
      const clears: { token: string; extents: Extent[] }[] = [];
      for await (const page of tracker.log(volume, { limit: this.#pageExtentsMax })) {
        const { copied, failure } = await this.#copyAll(page.extents, rate);
        if (this.#staged) {
          if (failure === undefined) clears.push({ token: page.token, extents: copied });
        } else {
          // Unstaged, what reached the backup is cleared even when a later chunk failed.
          await this.#clear(page.token, copied);
        }
        if (failure !== undefined) throw failure;
      }
      await cycle.commit();
      for (const c of clears) await this.#clear(c.token, c.extents);
      p.state = "done";
    } catch (err) {
      cycle.abandon();
      p.state = "failed";
      p.error = err instanceof Error ? err.message : String(err);
    }
    p.finishedAt = this.deps.clock.now();
    const seconds = Math.max(0.001, (p.finishedAt - p.startedAt!) / 1000);
    p.bytesPerSec = Math.round(p.bytesDone / seconds);
    p.etaSeconds = p.state === "done" ? 0 : null;
    return { ...p };
  }

  async #clear(token: string, copied: Extent[]): Promise<void> {
    for (let i = 0; i < copied.length; i += this.#pageExtentsMax) {
      const extents = copied.slice(i, i + this.#pageExtentsMax);
      const res = await this.deps.tracker.clear(this.deps.volume, { token, extents });
      this.#progress.regionsKept += res.regionsKept;
    }
  }

  /** Copies the extents in chunks, `concurrency` at once; stops at the first failure. */
  async #copyAll(
    extents: readonly Extent[],
    rate: RateLimit,
  ): Promise<{ copied: Extent[]; failure: unknown }> {
    const chunks: Extent[] = [];
    for (const e of extents) {
      for (let off = e.offset; off < e.offset + e.length; off += this.#chunkBytes) {
        chunks.push({ offset: off, length: Math.min(this.#chunkBytes, e.offset + e.length - off) });
      }
    }
    const copied: Extent[] = [];
    let next = 0;
    let failure: unknown;
    const worker = async () => {
      while (failure === undefined && next < chunks.length) {
        const chunk = chunks[next++];
        try {
          await this.#copy(chunk, rate);
          copied.push(chunk);
        } catch (err) {
          failure ??= err;
        }
      }
    };
    await Promise.all(Array.from({ length: this.#concurrency }, worker));
    return { copied: mergeExtents(copied), failure };
  }

  /** Copies one chunk from the primary to the backup under its range lock. */
  async #copy(chunk: Extent, rate: RateLimit): Promise<void> {
    const { locks, primary, writer, marker, backup, volume, regionBytes } = this.deps;
    if (!backup.isOnline) throw new Error(`Backup went offline during resync of "${volume}"`);
    await rate.take(chunk.length);
    const release = await locks.acquire(chunk.offset, chunk.length);
    try {
      marker.forget(regionsOf(chunk.offset, chunk.length, regionBytes));
      const data = await primary.read(chunk.offset, chunk.length);
      const body = encodeRecord({
        kind: "write",
        volume,
        offset: chunk.offset,
        length: chunk.length,
        data,
      });
      try {
        await writer.writeBatch(volume, body);
      } catch (err) {
        backup.markOffline(err);
        throw err;
      }
    } finally {
      release();
    }
    const p = this.#progress;
    p.bytesDone += chunk.length;
    p.regionsDone += regionsOf(chunk.offset, chunk.length, regionBytes).count;
  }
}
