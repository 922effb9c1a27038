/**
 * Activity marks (seeds 000/004's MOOS record, DRBD's activity log): while the backup is online, the
 * tracker holds a mark for every region this host may be writing, so that a host crash between the
 * backup's acknowledgement and the primary write leaves primary and secondary different only inside
 * marked regions. Those marks are promoted to dirty marks when the host restarts (or by
 * `reconstruct --host ID`) and resynced.
 *
 * Activity is kept in units of `unitBytes` (a power-of-two multiple of the region, default 4 MiB
 * as DRBD's activity-log extents): a coarse unit keeps random and hot-spot writes inside the hot
 * set, at the price of resyncing whole units after a crash. Below, "region" means such a unit.
 *
 * The host keeps the set of units the tracker holds for it ("hot"). A write inside hot units
 * needs no tracker call. A write touching a cold unit first records an activity mark for its
 * units plus the `predictUnits` units after them (sequential look-ahead), in one command.
 *
 * The hot set is bounded by `unitsMax`: the least recently written units are retired in
 * batches, but only when no write to them is in flight and the backup acknowledged every write to
 * them. A region is removed from the hot set before its retire is sent, and a write to a region
 * whose retire is in flight waits for it, so a new mark can never be overtaken by an old retire.
 *
 * A write whose backup send failed and whose fallback dirty mark failed too leaves a region
 * "tainted": the backup may hold bytes the primary does not. A tainted region is never retired; it
 * is turned into a dirty mark as soon as the tracker answers, and only then can it be retired.
 */
import { DirtyBitmap } from "../../src/dirty_bitmap.ts";
import { type Extent, extentOfRegions, type RegionRun, regionsOf } from "../../src/extent.ts";
import { trackExtentsMax, type TrackRequest } from "../../src/schemas.ts";
import { MarkQueue } from "./mark_queue.ts";

/** What the record needs of the tracker client. */
export interface ActivityTracker {
  activity(req: TrackRequest): Promise<unknown>;
  retireActivity(volume: string, req: { host: string; extents: Extent[] }): Promise<unknown>;
  track(req: TrackRequest): Promise<unknown>;
}

export interface ActivityOptions {
  /** Most regions held hot; the least recently written beyond it are retired. */
  unitsMax?: number;
  /** Regions after a cold write's own that are marked with it (look-ahead). */
  predictUnits?: number;
}

/** Default bound of the hot set, in regions (4 GiB of volume at 64 KiB regions). */
export const activityRegionsMaxDefault = 65536;
/** Default look-ahead, in regions (dirty marks) — activity units round it up. */
export const predictRegionsDefault = 16;
/** Default activity unit: activity marks cover aligned 4 MiB, like DRBD's activity-log extents. */
export const activityUnitBytesDefault = 4 * 1024 * 1024;

export class ActivityRecord {
  /** Regions the tracker holds an activity mark for, on behalf of this host. */
  readonly hot = new DirtyBitmap();
  /** Hot regions, least recently written first (Map keeps insertion order). */
  readonly #recency = new Map<number, true>();
  /** Writes in flight per region. */
  readonly #inflight = new Map<number, number>();
  /** Regions whose backup write failed and whose dirty mark failed too. */
  readonly tainted = new DirtyBitmap();
  /** Regions whose retire is in flight, and the promise of its end. */
  readonly #retiring = new Map<number, Promise<void>>();
  readonly #commands: MarkQueue;
  #retireRunning = false;
  /** False until the previous incarnation's marks were promoted: nothing may be retired before. */
  retireEnabled = false;
  readonly unitsMax: number;
  readonly predictUnits: number;
  /** Retire commands sent and regions retired. */
  retiresSent = 0;
  regionsRetired = 0;
  /** Regions marked by prediction (beyond the write's own). */
  regionsPredicted = 0;

  constructor(
    private readonly tracker: ActivityTracker,
    readonly hostId: string,
    readonly volume: string,
    readonly unitBytes: number,
    readonly sizeBytes: number,
    private readonly now: () => number,
    opts: ActivityOptions = {},
  ) {
    this.unitsMax = opts.unitsMax ?? activityRegionsMaxDefault;
    this.predictUnits = opts.predictUnits ?? predictRegionsDefault;
    this.#commands = new MarkQueue(
      (runs) =>
        this.tracker.activity({
          volume: this.volume,
          host: this.hostId,
          extents: runs.map((run) => extentOfRegions(run, this.unitBytes, this.sizeBytes)),
          time: this.now(),
        }),
      (runs, voided) => {
        for (const run of runs) {
          this.hot.set(run);
          for (let r = run.first; r < run.first + run.count; r++) {
            if (!this.#recency.has(r)) this.#recency.set(r, true);
          }
        }
        // A retire sent while this command flew may have reached the tracker after it: those
        // regions are not known to be marked, so they stay cold (acquire marks them again).
        for (const run of voided.runs()) this.#drop(run);
      },
    );
  }

  /** Activity commands sent. */
  get commandsSent(): number {
    return this.#commands.commandsSent;
  }

  /**
   * Pins the regions of a write (they cannot be retired until `release`) and resolves once every
   * one of them holds an activity mark at the tracker; returns undefined instead of a promise when
   * they all hold one already. Call `release` whatever happens next.
   */
  acquire(offset: number, length: number): Promise<void> | undefined {
    const run = regionsOf(offset, length, this.unitBytes);
    for (let r = run.first; r < run.first + run.count; r++) {
      this.#inflight.set(r, (this.#inflight.get(r) ?? 0) + 1);
    }
    // The common case, every region hot and none being retired, needs no promise.
    if (this.#retiring.size === 0 && this.hot.hasAll(run)) {
      this.#touch(run);
      this.#maybeRetire();
      return undefined;
    }
    return this.#acquireCold(run);
  }

  async #acquireCold(run: RegionRun): Promise<void> {
    // Loop: a retire or a voided command may take regions away while we wait.
    for (;;) {
      const waits = this.#retiresCovering(run);
      if (waits.length > 0) {
        await Promise.all(waits);
        continue;
      }
      if (this.hot.hasAll(run)) break;
      const total = Math.ceil(this.sizeBytes / this.unitBytes);
      // Predict only for a stream (continuing from a hot unit); a random write marks its own.
      const ahead = run.first > 0 && this.hot.has(run.first - 1) ? this.predictUnits : 0;
      const predicted = Math.max(0, Math.min(ahead, total - (run.first + run.count)));
      this.regionsPredicted += predicted;
      await this.#commands.mark({ first: run.first, count: run.count + predicted });
    }
    this.#touch(run);
    this.#maybeRetire();
  }

  /**
   * The write's fate is known: `safe` when the backup acknowledged it or a dirty mark covers it;
   * otherwise its regions are tainted and will not be retired before a dirty mark covers them.
   */
  release(offset: number, length: number, safe: boolean): void {
    const run = regionsOf(offset, length, this.unitBytes);
    for (let r = run.first; r < run.first + run.count; r++) {
      const n = (this.#inflight.get(r) ?? 1) - 1;
      if (n === 0) this.#inflight.delete(r);
      else this.#inflight.set(r, n);
    }
    if (!safe) this.tainted.set(run);
    this.#maybeRetire();
  }

  /** Regions pinned by writes in flight (for status and tests). */
  get pinnedRegions(): number {
    return this.#inflight.size;
  }

  /** Retires least recently written regions until the hot set is within its bound. */
  async retireNow(): Promise<void> {
    if (!this.retireEnabled) return;
    await this.#cleanTaint();
    const excess = this.hot.size - Math.floor(this.unitsMax * 7 / 8);
    if (excess <= 0 && this.hot.size <= this.unitsMax) return;
    const victims: number[] = [];
    for (const region of this.#recency.keys()) {
      if (victims.length >= excess) break;
      if (this.#inflight.has(region) || this.tainted.has(region)) continue;
      victims.push(region);
    }
    if (victims.length === 0) return;
    victims.sort((a, b) => a - b);
    const runs = toRuns(victims);
    for (const run of runs) this.#drop(run);
    let done!: () => void;
    const finished = new Promise<void>((resolve) => (done = resolve));
    for (const r of victims) this.#retiring.set(r, finished);
    try {
      for (let i = 0; i < runs.length; i += trackExtentsMax) {
        const extents = runs.slice(i, i + trackExtentsMax).map((run) =>
          extentOfRegions(run, this.unitBytes, this.sizeBytes)
        );
        this.retiresSent++;
        await this.tracker.retireActivity(this.volume, { host: this.hostId, extents });
      }
      this.regionsRetired += victims.length;
    } catch {
      // The retire may or may not have reached the tracker: its marks stay a superset either way
      // (the regions are cold here and will be marked again before the next write to them).
    } finally {
      for (const r of victims) this.#retiring.delete(r);
      done();
    }
  }

  #maybeRetire(): void {
    if (this.#retireRunning || !this.retireEnabled) return;
    if (this.hot.size <= this.unitsMax && this.tainted.size === 0) return;
    this.#retireRunning = true;
    this.retireNow().finally(() => (this.#retireRunning = false));
  }

  /** Turns tainted regions into dirty marks; they may be retired once that is acknowledged. */
  async #cleanTaint(): Promise<void> {
    if (this.tainted.size === 0) return;
    const runs = [...this.tainted.runs()];
    try {
      for (let i = 0; i < runs.length; i += trackExtentsMax) {
        await this.tracker.track({
          volume: this.volume,
          host: this.hostId,
          extents: runs.slice(i, i + trackExtentsMax).map((run) =>
            extentOfRegions(run, this.unitBytes, this.sizeBytes)
          ),
          time: this.now(),
        });
      }
      for (const run of runs) this.tainted.clear(run);
    } catch {
      // Still unreachable: the regions stay tainted (and hot) until a later attempt.
    }
  }

  #retiresCovering(run: RegionRun): Promise<void>[] {
    if (this.#retiring.size === 0) return [];
    const waits = new Set<Promise<void>>();
    for (let r = run.first; r < run.first + run.count; r++) {
      const p = this.#retiring.get(r);
      if (p) waits.add(p);
    }
    return [...waits];
  }

  /**
   * Drops the whole hot set, and what commands in flight would add to it: the tracker's record was
   * lost or replaced (issue 9), so none of these activity marks is known to be held any more.
   */
  forgetAll(): void {
    this.hot.reset();
    this.#recency.clear();
    this.#commands.void({ first: 0, count: Math.ceil(this.sizeBytes / this.unitBytes) });
  }

  /** Removes regions from the hot set, and from what commands in flight will add to it. */
  #drop(run: RegionRun): void {
    this.hot.clear(run);
    for (let r = run.first; r < run.first + run.count; r++) this.#recency.delete(r);
    this.#commands.void(run);
  }

  #touch(run: RegionRun): void {
    for (let r = run.first; r < run.first + run.count; r++) {
      this.#recency.delete(r);
      this.#recency.set(r, true);
    }
  }
}

/** Sorted region indexes → runs. */
function toRuns(sorted: number[]): RegionRun[] {
  const runs: RegionRun[] = [];
  for (const r of sorted) {
    const last = runs.at(-1);
    if (last && last.first + last.count === r) last.count++;
    else runs.push({ first: r, count: 1 });
  }
  return runs;
}
