/**
 * The tracker's store of tracking state in Deno KV (layout: kv_layout.ts).
 *
 * Capacity arithmetic (regionsPerSegment = 1024, segmentBytes = 128, 24 B of mark record a region):
 *   one segment = 1024 regions = 64 MiB of volume at the default 64 KiB region
 *   fully dirty segment in KV: 128 B bitmap + 24 576 B mark record ≈ 24.7 KiB (value limit 64 KiB)
 *   one atomic (≤ 800 KiB, ≤ 1000 mutations, ≤ 80 KiB of keys; a segment is 2 mutations and
 *     43–165 B of keys): ~31 fully dirty segments, or ~460–500 sparsely dirty ones
 *   volume bound regionsPerVolumeMax (registration.ts) = 2^28 regions = 16 TiB at 64 KiB
 *     = 262 144 segments; fully dirty: 32 MiB of bitmaps, 6 GiB of mark records, ~8 500 atomics
 *   in memory: segmentCacheMax segments (≤ 24.7 KiB each), commitWindowSegments decoded ones
 *     (24 KiB each) and, per volume whose info was asked for, ~80 B per dirty segment of summary
 *
 * Activity marks (kept apart from dirty marks; kv_layout.ts), one 128 B bitmap per (host, segment):
 *   a host fully active on a 16 TiB volume: 262 144 segments = 32 MiB of bitmaps (≤ 70 MiB in
 *     KV with keys of ≤ 151 B); a host agent's hot set (activityRegionsMax regions, 4 096 by
 *     default) touches ≤ 4 096 segments = 512 KiB, far less when its writes cluster
 *   ≤ activityHostsMax (64) hosts a volume; a commit group is one segment's dirty pair plus its
 *     hosts' activity keys: ≤ 66 mutations, ≤ 24.7 KiB + 64 × 279 B ≈ 42 KiB (fits any atomic);
 *     a promote of a fully active 64 MiB segment is one such group, ~31 of them an atomic
 *   in memory: activityCacheMaxDefault bitmaps (≤ 128 B each, 512 KiB) and, per volume with activity
 *     loaded, ~80 B per active (host, segment) of summary
 *
 * Writes (marks, clears, activity, registrations) are serialized through one group committer
 * (commit/group_commit.ts, commit/batch_commit.ts): concurrent operations are merged per segment and committed
 * together, and each request is answered only after its commit. This process must be the only
 * writer of its KV; it caches committed segments and the mark sequence in memory.
 */
import { badRequest, conflict, notFound } from "../src/errors.ts";
import type { Clock } from "../src/clock.ts";
import type { Extent } from "../src/extent.ts";
import type { Metrics } from "../src/metrics.ts";
import type { VolumeMap } from "../src/volume_map.ts";
import type {
  ActivityPage,
  ActivityPromoteResponse,
  ActivityResponse,
  ActivityRetireResponse,
  ClearResponse,
  LogPage,
  TrackResponse,
  VolumeInfo,
} from "../src/schemas.ts";
import { type ActivityWalk, readActivityPage } from "./activity_reader.ts";
import { type ActivitySummary, loadActivity } from "./activity_state.ts";
import { commitBatch } from "./commit/batch_commit.ts";
import type {
  ActivityOp,
  ClearOp,
  MarkOp,
  PromoteOp,
  RetireOp,
  TrackOp,
} from "./commit/batch_ops.ts";
import { GroupCommitter } from "./commit/group_commit.ts";
import { seqsPrefix, volumeKey, type VolumeRecord, volumesPrefix } from "./kv_layout.ts";
import { decideRegistration, type Registration } from "./registration.ts";
import { checkLeaseClaim, type LeaseClaim } from "./lease_fence.ts";
import { readLogPage } from "./log_reader.ts";
import { type MapSnapshot, readVolumeMap } from "./map_reader.ts";
import { SegmentCache, segmentCacheMaxDefault } from "./segment_cache.ts";
import {
  loadSummary,
  runsOfExtents,
  segmentsSpanned,
  type SegmentSummary,
  volumeInfo,
  type VolumeState,
  volumeState,
} from "./volume_state.ts";

/** Most registered volumes. */
export const volumesMax = 4096;
/** Most tracking commands waiting for a commit before new ones are refused with 503. */
export const queueOpsMaxDefault = 16_384;
/** Most segment pieces one commit batch takes (one command spanning more goes alone). */
export const batchPiecesMax = 65_536;
/** Activity bitmaps cached (128 B each). */
export const activityCacheMaxDefault = 4096;

/** A log page request, validated. */
export interface LogQuery {
  since?: number;
  until?: number;
  cursor?: string;
  limit: number;
}

/** Options of the store. */
export interface TrackerStateOptions {
  clock: Clock;
  metrics?: Metrics;
  segmentCacheMax?: number;
  queueOpsMax?: number;
  /** Makes a new record's generation id (default: a random UUID). */
  newGeneration?: () => string;
}

/** Counters of the committer, for metrics and tests. */
export interface CommitStats {
  /** Batches committed (or failed). */
  batches: number;
  /** Operations those batches held. */
  batchOps: number;
  /** Operations in the latest batch. */
  lastBatchOps: number;
  /** `kv.atomic()` commits that succeeded. */
  atomics: number;
}

/** Tracking state of all volumes; see the file comment. */
export class TrackerState {
  readonly stats: CommitStats = { batches: 0, batchOps: 0, lastBatchOps: 0, atomics: 0 };
  readonly #kv: Deno.Kv;
  readonly #clock: Clock;
  readonly #metrics?: Metrics;
  readonly #cache: SegmentCache;
  readonly #activityCache = new SegmentCache<Uint8Array>(activityCacheMaxDefault);
  readonly #volumes = new Map<string, VolumeState>();
  readonly #committer: GroupCommitter<TrackOp>;
  readonly #ready: Promise<void>;
  readonly #newGeneration: () => string;

  constructor(kv: Deno.Kv, opts: TrackerStateOptions) {
    this.#kv = kv;
    this.#clock = opts.clock;
    this.#metrics = opts.metrics;
    this.#newGeneration = opts.newGeneration ?? (() => crypto.randomUUID());
    this.#cache = new SegmentCache(opts.segmentCacheMax ?? segmentCacheMaxDefault);
    const ctx = {
      kv,
      cache: this.#cache,
      activityCache: this.#activityCache,
      volume: (name: string) => this.#volumes.get(name)!,
      summary: (v: VolumeState) => this.#summary(v),
      activity: (v: VolumeState) => this.#activity(v),
      onAtomic: () => {
        this.stats.atomics++;
        this.#metrics?.count(
          "trackmirror_tracker_kv_atomics_total",
          "Deno KV atomic commits of tracking state",
        );
      },
    };
    this.#committer = new GroupCommitter<TrackOp>((ops) => {
      this.#countBatch(ops.length);
      return commitBatch(ctx, ops);
    }, { queueOpsMax: opts.queueOpsMax ?? queueOpsMaxDefault, batchWeightMax: batchPiecesMax });
    this.#ready = this.#load();
    this.#metrics?.gauge(
      "trackmirror_tracker_queue_commands",
      "Tracking commands waiting for a commit",
      [],
      (set) => set({}, this.queued),
    );
    this.#metrics?.gauge(
      "trackmirror_tracker_commit_batch_commands_last",
      "Commands in the latest commit batch",
      [],
      (set) => set({}, this.stats.lastBatchOps),
    );
    this.#metrics?.gauge(
      "trackmirror_tracker_segment_cache_segments",
      "Bitmap segments cached in memory",
      [],
      (set) => set({}, this.#cache.size),
    );
  }

  /** Tracking commands waiting for a commit. */
  get queued(): number {
    return this.#committer.queued;
  }

  /** Registers a volume or renews its owner's lease; 409 on a conflicting registration. */
  async register(name: string, reg: Registration): Promise<VolumeInfo> {
    await this.#ready;
    const v = await this.#committer.exclusive(async () => {
      const existing = this.#volumes.get(name);
      const record = decideRegistration(
        existing?.record,
        name,
        reg,
        this.#clock.now(),
        this.#newGeneration,
      );
      if (!existing && this.#volumes.size >= volumesMax) {
        throw conflict(
          `Cannot register volume "${name}": ${volumesMax} volumes already registered`,
        );
      }
      await this.#kv.set(volumeKey(name), record);
      if (existing) {
        existing.record = record;
        return existing;
      }
      const fresh = volumeState(record, 0);
      fresh.summary = new Map(); // a volume never registered has no tracking state
      fresh.activity = new Map();
      this.#volumes.set(name, fresh);
      return fresh;
    });
    return await this.#info(v);
  }

  /** One volume; 404 when unknown. */
  async info(name: string): Promise<VolumeInfo> {
    return await this.#info(await this.#volume(name));
  }

  /** Every registered volume, by name. */
  async list(): Promise<VolumeInfo[]> {
    await this.#ready;
    const names = [...this.#volumes.keys()].sort();
    return await Promise.all(names.map((n) => this.info(n)));
  }

  /** Marks every region the extents touch; resolves after the marks are committed. */
  async mark(
    name: string,
    extents: readonly Extent[],
    time: number,
    claim?: LeaseClaim,
  ): Promise<TrackResponse> {
    const v = await this.#volume(name);
    checkLeaseClaim(v.record, claim);
    const runs = runsOfExtents(v, extents);
    const op: MarkOp = { kind: "mark", volume: name, runs, time, regionsNew: 0 };
    await this.#committer.submit(op, segmentsSpanned(runs));
    const regionsMarked = runs.reduce((n, r) => n + r.count, 0);
    return {
      volume: name,
      regionsMarked,
      regionsNew: op.regionsNew,
      generation: v.record.generation,
      markSeq: v.seq,
    };
  }

  /**
   * Clears the dirty regions inside `extents` (all when absent) that were not marked after
   * `token`; those marked after it stay dirty and are reported as kept.
   */
  async clear(
    name: string,
    token: string,
    extents?: readonly Extent[],
    claim?: LeaseClaim,
  ): Promise<ClearResponse> {
    const v = await this.#volume(name);
    checkLeaseClaim(v.record, claim);
    const t = Number(token);
    if (!/^\d+$/.test(token) || !Number.isSafeInteger(t)) {
      throw badRequest(`Token "${token}" is not a token returned by the log`);
    }
    const runs = extents ? runsOfExtents(v, extents) : null;
    const op: ClearOp = {
      kind: "clear",
      volume: name,
      runs,
      token: t,
      regionsCleared: 0,
      regionsKept: 0,
    };
    await this.#committer.submit(op, runs ? segmentsSpanned(runs) : 1);
    return { regionsCleared: op.regionsCleared, regionsKept: op.regionsKept };
  }

  /**
   * Records `host`'s activity marks for every region the extents touch; resolves after they are
   * committed. Dirty marks, the log and the mark sequence are not touched.
   */
  async recordActivity(
    name: string,
    host: string,
    extents: readonly Extent[],
    claim?: LeaseClaim,
  ): Promise<ActivityResponse> {
    const v = await this.#volume(name);
    checkLeaseClaim(v.record, claim);
    const runs = runsOfExtents(v, extents);
    const op: ActivityOp = { kind: "activity", volume: name, host, runs, regionsNew: 0 };
    await this.#committer.submit(op, segmentsSpanned(runs));
    const regionsMarked = runs.reduce((n, r) => n + r.count, 0);
    return { volume: name, host, regionsMarked, regionsNew: op.regionsNew };
  }

  /** Clears `host`'s activity marks of the regions the extents touch; resolves after commit. */
  async retireActivity(
    name: string,
    host: string,
    extents: readonly Extent[],
    claim?: LeaseClaim,
  ): Promise<ActivityRetireResponse> {
    const v = await this.#volume(name);
    checkLeaseClaim(v.record, claim);
    const runs = runsOfExtents(v, extents);
    const op: RetireOp = { kind: "retire", volume: name, host, runs, regionsRetired: 0 };
    await this.#committer.submit(op, segmentsSpanned(runs));
    return { regionsRetired: op.regionsRetired };
  }

  /**
   * Turns every activity mark of `host` into a dirty mark at `time` with a new mark sequence (so a
   * clear with any token issued before keeps it), and clears the activity marks; one committer
   * operation, crash-safe as commit/batch_commit.ts explains. Resolves after the commit.
   */
  async promoteActivity(
    name: string,
    host: string,
    time: number,
  ): Promise<ActivityPromoteResponse> {
    const v = await this.#volume(name);
    const op: PromoteOp = { kind: "promote", volume: name, host, time, regionsPromoted: 0 };
    const weight = v.activity?.get(host)?.segments.size ?? 1;
    await this.#committer.submit(op, Math.max(1, weight));
    return { regionsPromoted: op.regionsPromoted };
  }

  /** One page of the volume's activity marks, of one host or all (activity_reader.ts). */
  async activityPage(name: string, query: ActivityWalk): Promise<ActivityPage> {
    const v = await this.#volume(name);
    return await readActivityPage(this.#kv, v, query);
  }

  /** One page of the volume's tracking log (log_reader.ts). */
  async logPage(name: string, query: LogQuery): Promise<LogPage> {
    const v = await this.#volume(name);
    let token = v.seq;
    let fromRegion = 0;
    if (query.cursor !== undefined) {
      [token, fromRegion] = query.cursor.split(":").map(Number);
      if (!Number.isSafeInteger(token) || token > v.seq || !(fromRegion <= v.regionCount)) {
        throw badRequest(`Cursor "${query.cursor}" does not belong to a log of volume "${name}"`);
      }
    }
    return await readLogPage(this.#kv, this.#cache, v, {
      token,
      fromRegion,
      since: query.since,
      until: query.until,
      limit: query.limit,
    });
  }

  /** The volume's dirty map in `cells` cells (map_reader.ts). */
  async volumeMap(name: string, cells: number): Promise<VolumeMap> {
    const v = await this.#volume(name);
    let info = await this.#info(v);
    // A failed commit drops the summaries (#info reloads them): take them again until both are
    // there, synchronously after #info, so the snapshot is one committed state.
    for (let tries = 1; !(v.summary && v.activity); tries++) {
      if (tries >= 3) throw new Error(`The summaries of volume "${name}" keep being dropped`);
      info = await this.#info(v);
    }
    const snapshot: MapSnapshot = {
      dirty: new Map([...v.summary].map(([s, e]) => [s, e.count])),
      activity: [...v.activity].flatMap(([host, h]) =>
        [...h.segments].map(([s, count]) => [host, s, count] as const)
      ),
      dirtyRegions: info.dirtyRegions,
      activityRegions: info.activityRegions,
    };
    return await readVolumeMap(this.#kv, this.#cache, v, snapshot, cells);
  }

  /** Refuses new work and waits until everything queued has been committed. */
  async close(): Promise<void> {
    await this.#ready.catch(() => {});
    await this.#committer.close();
  }

  async #load(): Promise<void> {
    const seqs = new Map<string, number>();
    for await (const e of this.#kv.list<number>({ prefix: seqsPrefix })) {
      seqs.set(e.key[1] as string, e.value);
    }
    for await (const e of this.#kv.list<VolumeRecord>({ prefix: volumesPrefix })) {
      let record = e.value;
      if (typeof record.generation !== "string") {
        // Written before generations: give it one now, durably, so a restart keeps it.
        record = { ...record, generation: this.#newGeneration() };
        await this.#kv.set(e.key, record);
      }
      this.#volumes.set(record.name, volumeState(record, seqs.get(record.name) ?? 0));
    }
  }

  async #volume(name: string): Promise<VolumeState> {
    await this.#ready;
    const v = this.#volumes.get(name);
    if (!v) throw notFound(`Volume "${name}" is not registered`);
    return v;
  }

  /** The volume as the API shows it; its summaries are loaded by the committer when missing. */
  async #info(v: VolumeState): Promise<VolumeInfo> {
    if (v.summary && v.activity) return volumeInfo(v, v.summary, v.activity);
    return await this.#committer.exclusive(async () =>
      volumeInfo(v, await this.#summary(v), await this.#activity(v))
    );
  }

  /** The volume's summary; loads it from KV first if needed (inside the committer only). */
  async #summary(v: VolumeState): Promise<Map<number, SegmentSummary>> {
    return v.summary ??= await loadSummary(this.#kv, v);
  }

  /** The volume's activity summary; loads it from KV first if needed (inside the committer only). */
  async #activity(v: VolumeState): Promise<ActivitySummary> {
    return v.activity ??= await loadActivity(this.#kv, v.record.name);
  }

  #countBatch(ops: number): void {
    this.stats.batches++;
    this.stats.batchOps += ops;
    this.stats.lastBatchOps = ops;
    this.#metrics?.count("trackmirror_tracker_commit_batches_total", "Commit batches");
    this.#metrics?.count(
      "trackmirror_tracker_commit_batch_commands_total",
      "Commands in commit batches",
      ops,
    );
  }
}
