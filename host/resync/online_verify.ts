/**
 * Online verify (DRBD's verify-alg): while applications keep writing, compares every region of
 * the primary with the secondary by SHA-256 (the checksum resync's hashing, region_walk.ts), and
 * marks the regions that differ dirty at the tracker, so the next `deno task reconstruct` repairs
 * them. It ships nothing.
 *
 * A region under write while it is compared may hash differently on the two sides for a moment
 * (the primary has the write, the backup has not applied it yet, or the reverse), which is no
 * difference at all. So the walk first compares each chunk WITHOUT the range lock — writes are
 * never held up by regions that agree, almost all of them — and compares the regions that
 * differed again UNDER their range lock: no write to them is then in flight, every write to them
 * acknowledged earlier has reached the primary, and the backup's checksums route applies
 * everything it has taken before it hashes (backup/routes/checksums.ts). What still differs then
 * differs for real (or was written while the backup was away, and is marked already).
 *
 * The differing regions are kept in a bitmap (1 bit a region: 2 MiB for 1 TiB of 64 KiB regions)
 * and marked at the tracker chunk by chunk through the volume's leased tracker port (the one its
 * marker uses, with the lease claim), so a walk that fails halfway has marked what it found.
 */
import type { BlockDevice } from "../../src/block_device.ts";
import type { Clock } from "../../src/clock.ts";
import { DirtyBitmap } from "../../src/dirty_bitmap.ts";
import { type Extent, extentOfRegions, type RegionRun, regionsOf } from "../../src/extent.ts";
import type { ResyncState, VerifyProgress } from "../../src/host_schemas.ts";
import { verifyExtentsListedMax } from "../../src/limits.ts";
import { trackExtentsMax } from "../../src/schemas.ts";
import type { TrackSender } from "../fork/tracker_marker.ts";
import type { RangeLock } from "../fork/range_lock.ts";
import {
  type CompareDeps,
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

export interface OnlineVerifyDeps {
  volume: string;
  sizeBytes: number;
  regionBytes: number;
  /** The host whose marks these are (the tracker records it with each mark). */
  hostId: string;
  /** The raw primary (below the fork layer): a verify writes nothing. */
  primary: BlockDevice;
  locks: RangeLock;
  backup: { readonly isOnline: boolean; markOffline(err: unknown): void };
  /** Absent when the backup client offers no checksums: the verify then fails, saying so. */
  secondary: SecondaryChecksums | undefined;
  /** The volume's leased tracker port, where differing regions are marked dirty. */
  tracker: TrackSender;
  clock: Clock;
  /** How the rate bound waits (default: the process's timers); tests step it by hand. */
  sleep?: Sleep;
}

/** Chunk size, chunks in flight and rate bound: checksum resync's. */
export type OnlineVerifyOptions = WalkOptions;

export class OnlineVerify {
  #progress: VerifyProgress;
  readonly #job = new OneAtATime<VerifyProgress>();
  /** Regions found differing by the current (or last) walk. */
  readonly #differing = new DirtyBitmap();
  readonly #pacing: ReturnType<typeof walkPacing>;

  constructor(private readonly deps: OnlineVerifyDeps, opts: OnlineVerifyOptions = {}) {
    this.#pacing = walkPacing(deps.regionBytes, opts);
    this.#progress = this.#fresh("idle");
  }

  /** The progress with its rate, ETA and the differing extents found so far. */
  get progress(): VerifyProgress {
    return { ...withLiveRate(this.#progress, this.deps.clock), ...this.#found() };
  }

  get running(): boolean {
    return this.#job.running;
  }

  /** Starts a verify unless one runs; returns a promise of its final progress. */
  start(): Promise<VerifyProgress> {
    return this.#job.start(() => this.#run());
  }

  #fresh(state: ResyncState): VerifyProgress {
    const { volume, sizeBytes, regionBytes, clock } = this.deps;
    return {
      ...walkProgressStart(volume, sizeBytes, regionBytes, state, clock),
      regionsCompared: 0,
      regionsRechecked: 0,
      regionsDiffering: 0,
      bytesDiffering: 0,
      extentsTotal: 0,
      extents: [],
    };
  }

  /** The differing extents (merged), the first `verifyExtentsListedMax` listed, and their bytes. */
  #found(): Pick<VerifyProgress, "extents" | "extentsTotal" | "bytesDiffering"> {
    const { regionBytes, sizeBytes } = this.deps;
    const extents: Extent[] = [];
    let extentsTotal = 0;
    let bytesDiffering = 0;
    for (const run of this.#differing.runs()) {
      const extent = extentOfRegions(run, regionBytes, sizeBytes);
      if (extents.length < verifyExtentsListedMax) extents.push(extent);
      extentsTotal++;
      bytesDiffering += extent.length;
    }
    return { extents, extentsTotal, bytesDiffering };
  }

  async #run(): Promise<VerifyProgress> {
    const p = this.#progress = this.#fresh("running");
    const { clock, sleep } = this.deps;
    const rate = new RateLimit(p.startedAt!, this.#pacing.bytesPerSecMax, clock, sleep);
    this.#differing.reset();
    try {
      const secondary = this.deps.secondary;
      if (secondary === undefined) {
        throw new Error(`The backup client of "${this.deps.volume}" offers no region checksums`);
      }
      const compare = { ...this.deps, secondary };
      const { failure } = await walkChunks(
        this.deps.sizeBytes,
        this.#pacing.chunkBytes,
        this.#pacing.concurrency,
        (chunk) => this.#verifyChunk(compare, chunk, rate),
      );
      if (failure !== undefined) throw failure;
      p.state = "done";
    } catch (err) {
      p.state = "failed";
      p.error = err instanceof Error ? err.message : String(err);
    }
    finishRate(p, this.deps.clock);
    return this.progress;
  }

  /** Compares a chunk; its differing regions again under their lock; marks what still differs. */
  async #verifyChunk(compare: CompareDeps, chunk: Extent, rate: RateLimit): Promise<void> {
    const { backup, volume, regionBytes } = this.deps;
    if (!backup.isOnline) throw new Error(`Backup went offline during verify of "${volume}"`);
    await rate.take(chunk.length);
    const p = this.#progress;
    const chunkRun = regionsOf(chunk.offset, chunk.length, regionBytes);
    const { runs: suspects } = await compareSpan(compare, chunk);
    const confirmed: RegionRun[] = [];
    for (const suspect of suspects) {
      const run = { first: chunkRun.first + suspect.first, count: suspect.count };
      confirmed.push(...await this.#recheck(compare, run));
      p.regionsRechecked += run.count;
    }
    await this.#mark(confirmed);
    for (const run of confirmed) this.#differing.set(run);
    p.regionsDiffering = this.#differing.size;
    p.bytesDone += chunk.length;
    p.regionsDone += chunkRun.count;
    p.regionsCompared += chunkRun.count;
  }

  /** The regions of `run` that still differ once no write to them is in flight. */
  async #recheck(compare: CompareDeps, run: RegionRun): Promise<RegionRun[]> {
    const span = extentOfRegions(run, this.deps.regionBytes, this.deps.sizeBytes);
    const { runs } = await this.deps.locks.with(
      span.offset,
      span.length,
      () => compareSpan(compare, span),
    );
    return runs.map((r) => ({ first: run.first + r.first, count: r.count }));
  }

  /** Marks `runs` dirty at the tracker, `trackExtentsMax` extents a command. */
  async #mark(runs: RegionRun[]): Promise<void> {
    const { tracker, volume, hostId, regionBytes, sizeBytes, clock } = this.deps;
    const extents = runs.map((r) => extentOfRegions(r, regionBytes, sizeBytes));
    for (let i = 0; i < extents.length; i += trackExtentsMax) {
      await tracker.track({
        volume,
        host: hostId,
        extents: extents.slice(i, i + trackExtentsMax),
        time: clock.now(),
      });
    }
  }
}
