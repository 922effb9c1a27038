/**
 * Makes sure the tracker holds a mark for regions written while the backup is offline, and remembers
 * which regions it already holds so that later writes to them need no tracker call.
 *
 * The cache of marked regions is never larger than the tracker's record: whoever clears regions at
 * the tracker (resync) calls `forget` first, under the regions' range lock, so a write after that
 * marks again. Concurrent marks of one volume are coalesced into one tracking command
 * (at most `trackExtentsMax` extents, `inflightCommandsMax` commands in flight).
 */
import { DirtyBitmap } from "../src/dirty_bitmap.ts";
import { type Extent, type RegionRun, regionsOf } from "../src/extent.ts";
import { trackExtentsMax, type TrackRequest } from "../src/schemas.ts";

/** What the marker needs of the tracker client. */
export interface TrackSender {
  track(req: TrackRequest): Promise<unknown>;
}

interface Pending {
  extent: Extent;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class TrackerMarker {
  /** Regions the tracker is known to hold marked for this volume. */
  readonly cache = new DirtyBitmap();
  readonly #queue: Pending[] = [];
  #inflight = 0;
  readonly #inflightMax = 2;
  /** Tracking commands sent (each one KV commit's worth of waiting for a write). */
  commandsSent = 0;
  /** Writes that found their regions already marked and needed no tracker call. */
  cacheHits = 0;

  constructor(
    private readonly sender: TrackSender,
    readonly hostId: string,
    readonly volume: string,
    readonly regionBytes: number,
    private readonly now: () => number,
  ) {}

  /** Resolves once the tracker holds marks covering `offset`+`length`. */
  ensureMarked(offset: number, length: number): Promise<void> {
    if (this.cache.hasAll(regionsOf(offset, length, this.regionBytes))) {
      this.cacheHits++;
      return Promise.resolve();
    }
    const done = new Promise<void>((resolve, reject) => {
      this.#queue.push({ extent: { offset, length }, resolve, reject });
    });
    this.#pump();
    return done;
  }

  /** Drops regions from the cache; call before clearing them at the tracker. */
  forget(run: RegionRun): void {
    this.cache.clear(run);
  }

  /** Drops the whole cache (e.g. when the tracker's state is unknown). */
  forgetAll(): void {
    this.cache.reset();
  }

  #pump(): void {
    while (this.#inflight < this.#inflightMax && this.#queue.length > 0) {
      const batch = this.#queue.splice(0, trackExtentsMax);
      this.#inflight++;
      this.#send(batch).finally(() => {
        this.#inflight--;
        this.#pump();
      });
    }
  }

  async #send(batch: Pending[]): Promise<void> {
    try {
      this.commandsSent++;
      await this.sender.track({
        volume: this.volume,
        host: this.hostId,
        extents: batch.map((p) => p.extent),
        time: this.now(),
      });
      for (const p of batch) {
        this.cache.set(regionsOf(p.extent.offset, p.extent.length, this.regionBytes));
        p.resolve();
      }
    } catch (err) {
      for (const p of batch) p.reject(err);
    }
  }
}
