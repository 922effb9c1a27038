/**
 * Makes sure the tracker holds a dirty mark for regions written while the backup is offline, and
 * remembers which regions it already holds (the seeds' MOS record), so that later writes to them
 * need no tracker call at all.
 *
 * Prediction: a write that touches an unmarked region right after a marked one (a stream) marks its
 * regions plus the `predictRegions` regions after them in the same command (sequential
 * look-ahead), so a sequential stream makes one tracker call every `predictRegions + 1` regions; a
 * write elsewhere marks only its own regions. The marks are a superset of what is really out of
 * sync: at most `predictRegions` regions per stream are marked without being written.
 *
 * The cache is never larger than the tracker's record: whoever clears regions at the tracker
 * (resync) calls `forget` first, under the regions' range lock, so a write after that marks again;
 * a command in flight while regions are forgotten does not add them back when it is acknowledged.
 * Concurrent marks are coalesced (≤ `trackExtentsMax` extents a command, 2 commands in flight).
 */
import { DirtyBitmap } from "../../src/dirty_bitmap.ts";
import { extentOfRegions, type RegionRun, regionsOf } from "../../src/extent.ts";
import type { TrackRequest } from "../../src/schemas.ts";
import { MarkQueue } from "./mark_queue.ts";

/** What the marker needs of the tracker client. */
export interface TrackSender {
  track(req: TrackRequest): Promise<unknown>;
}

export class TrackerMarker {
  /** Regions the tracker is known to hold marked for this volume. */
  readonly cache = new DirtyBitmap();
  readonly #commands: MarkQueue;
  readonly #regionsTotal: number;
  /** Writes that found their regions already marked and needed no tracker call. */
  cacheHits = 0;
  /** Regions marked ahead of writes by prediction. */
  regionsPredicted = 0;

  constructor(
    private readonly sender: TrackSender,
    readonly hostId: string,
    readonly volume: string,
    readonly regionBytes: number,
    readonly sizeBytes: number,
    private readonly now: () => number,
    readonly predictRegions = 0,
  ) {
    this.#regionsTotal = Math.ceil(sizeBytes / regionBytes);
    this.#commands = new MarkQueue(
      (runs) =>
        this.sender.track({
          volume: this.volume,
          host: this.hostId,
          extents: runs.map((run) => extentOfRegions(run, this.regionBytes, this.sizeBytes)),
          time: this.now(),
        }),
      (runs, voided) => {
        for (const run of runs) this.cache.set(run);
        for (const run of voided.runs()) this.cache.clear(run);
      },
    );
  }

  /** Tracking commands sent (each one KV commit's worth of waiting for a write). */
  get commandsSent(): number {
    return this.#commands.commandsSent;
  }

  /** Resolves once the tracker holds marks covering `offset`+`length`. */
  async ensureMarked(offset: number, length: number): Promise<void> {
    const run = regionsOf(offset, length, this.regionBytes);
    if (this.cache.hasAll(run)) {
      this.cacheHits++;
      this.#markAhead(run);
      return;
    }
    while (!this.cache.hasAll(run)) {
      const end = run.first + run.count;
      // Predict only for a stream: a write continuing from a marked region. A random write then
      // costs one region's mark, not N+1.
      const streaming = run.first > 0 && this.cache.has(run.first - 1);
      const ahead = streaming ? this.predictRegions : 0;
      const predicted = Math.max(0, Math.min(ahead, this.#regionsTotal - end));
      this.regionsPredicted += predicted;
      await this.#commands.mark({ first: run.first, count: run.count + predicted });
    }
  }

  /**
   * A stream halfway through its marked window marks the next window in the background, so it
   * never stalls on the tracker at the window's edge. Only ever adds marks (a superset is safe);
   * a failure is ignored: the write reaching the edge then marks synchronously.
   */
  #markAhead(run: RegionRun): void {
    if (this.predictRegions < 2) return;
    const next = run.first + run.count + Math.floor(this.predictRegions / 2);
    if (next >= this.#regionsTotal || this.cache.has(next)) return;
    if (!this.cache.has(run.first + run.count - 1) || !this.cache.has(run.first - 1)) return;
    let first = run.first + run.count;
    while (first < next && this.cache.has(first)) first++;
    const count = Math.min(this.predictRegions + 1, this.#regionsTotal - first);
    this.regionsPredicted += count;
    this.#commands.mark({ first, count }).catch(() => {});
  }

  /** Drops regions from the cache; call before clearing them at the tracker. */
  forget(run: RegionRun): void {
    this.cache.clear(run);
    this.#commands.void(run);
  }

  /** Drops the whole cache (e.g. when the tracker's state is unknown). */
  forgetAll(): void {
    this.cache.reset();
    this.#commands.void({ first: 0, count: this.#regionsTotal });
  }
}
