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
 *     KV with keys of ≤ 151 B); a host agent's hot set (activityRegionsMax, 65 536 regions by
 *     default, held in 4 MiB units: ≤ 1 024 units) touches ≤ 1 024 segments = 128 KiB of
 *     bitmaps (≤ 240 KiB on etcd with keys and etcd's own), far less when its writes cluster
 *   ≤ activityHostsMax (64) hosts a volume; a commit group is one segment's dirty pair plus its
 *     hosts' activity keys: ≤ 66 mutations, ≤ 24.7 KiB + 64 × 279 B ≈ 42 KiB (fits any atomic);
 *     a promote of a fully active 64 MiB segment is one such group, ~31 of them an atomic
 *   in memory: activityCacheMaxDefault bitmaps (≤ 128 B each, 512 KiB) and, per volume with activity
 *     loaded, ~80 B per active (host, segment) of summary
 *
 * On etcd (store/etcd_store.ts; keys ~35 B, and ~60 B of etcd's own per key):
 *   fully dirty segment ≈ 24.9 KB live → 389 MiB per TiB of volume: etcd's 2 GiB default quota
 *     holds ~5.2 TiB of fully dirty volume, its 8 GiB suggested maximum ~21 TiB; a 16 TiB volume
 *     fully dirty is 6.1 GiB; 1 % of regions dirty, scattered over every segment: 8.8 MiB per TiB
 *   one txn (≤ 128 operations and, apart, 128 compares; ≤ 1.5 MiB): ≤ 63 segment pairs, ~58
 *     fully dirty ones; every commit rewrites its segments' values, and etcd keeps each old
 *     revision until compacted (README "Trackers on etcd": compaction and defragmentation)
 *
 * Writes (marks, clears, activity, registrations) are serialized through one group committer
 * (commit/group_commit.ts, commit/batch_commit.ts): concurrent operations are merged per segment and committed
 * together, and each request is answered only after its commit. On Deno KV this process must be
 * the only writer; it caches committed segments and the mark sequence in memory.
 *
 * On a shared store (etcd, several trackers; store/tracker_store.ts) memory is only a scratch pad:
 * a request re-reads its volume's record, a batch re-reads each volume's mark sequence and every
 * segment it changes and commits with versionstamp checks (commit/batch_commit.ts), retried up
 * to `commitConflictRetriesMax` times when another tracker got there first; summaries are
 * rebuilt when the store's stamp of the volume's prefix moved; registrations are checked-and-set. Leases, epochs and generation ids are
 * in the volume record in the store, so every tracker answers the same.
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
import { denoKvAtomicLimits } from "./commit/atomic_writer.ts";
import { resetOutcomes } from "./commit/batch_ops.ts";
import { retryOnConflict, sharedBatchPieces } from "./commit/conflict_retry.ts";
import {
  activityPrefix,
  dirtyPrefix,
  seqKey,
  seqsPrefix,
  volumeKey,
  type VolumeRecord,
  volumesPrefix,
} from "./kv_layout.ts";
import { refreshSequences, registerOnce, StampedSummaries } from "./shared_state.ts";
import type { ReadSet } from "./store/read_set.ts";
import type { StoreTraits, TrackerStore } from "./store/tracker_store.ts";
import { decideRegistration, type Registration } from "./registration.ts";
import { checkLeaseClaim, type LeaseClaim } from "./lease_fence.ts";
import { readLogPage } from "./log_reader.ts";
import { type MapSnapshot, readVolumeMap } from "./map_reader.ts";
import { dirtinessEvent, registrationEvent } from "./tracker_events.ts";
import { emit, type EventInput } from "../src/events.ts";
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
/** The embedded default: Deno KV, written by this process only. */
export const denoKvTraits: StoreTraits = {
  kind: "Deno KV",
  shared: false,
  atomic: denoKvAtomicLimits,
};

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
  /** What the store is (default: Deno KV, this process its only writer). */
  traits?: StoreTraits;
  /** Random source of the conflict backoff (default Math.random). */
  random?: () => number;
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
  /** Batch attempts that lost a race with another tracker (shared store) and were retried. */
  conflicts: number;
}

/** Tracking state of all volumes; see the file comment. */
export class TrackerState {
  readonly stats: CommitStats = {
    batches: 0,
    batchOps: 0,
    lastBatchOps: 0,
    atomics: 0,
    conflicts: 0,
  };
  readonly #kv: TrackerStore;
  readonly #shared: boolean;
  readonly #clock: Clock;
  readonly #metrics?: Metrics;
  readonly #cache: SegmentCache;
  readonly #activityCache: SegmentCache<Uint8Array>;
  readonly #volumes = new Map<string, VolumeState>();
  /** Whether each volume was last told dirty (true) or clean (false), for its events. */
  readonly #dirtyTold = new Map<string, boolean>();
  readonly #committer: GroupCommitter<TrackOp>;
  readonly #ready: Promise<void>;
  readonly #newGeneration: () => string;
  readonly #random: () => number;
  /** Shared store only: summaries reused while the store's stamp of their prefix holds. */
  readonly #stamped: StampedSummaries | null;

  constructor(kv: TrackerStore, opts: TrackerStateOptions) {
    const traits = opts.traits ?? denoKvTraits;
    const random = opts.random ?? Math.random;
    this.#kv = kv;
    this.#shared = traits.shared;
    this.#random = random;
    this.#stamped = traits.shared ? new StampedSummaries(kv) : null;
    this.#clock = opts.clock;
    this.#metrics = opts.metrics;
    this.#newGeneration = opts.newGeneration ?? (() => crypto.randomUUID());
    // Another tracker may change any segment of a shared store: nothing is cached there.
    this.#cache = new SegmentCache(
      traits.shared ? 0 : opts.segmentCacheMax ?? segmentCacheMaxDefault,
    );
    this.#activityCache = new SegmentCache<Uint8Array>(
      traits.shared ? 0 : activityCacheMaxDefault,
    );
    const ctx = {
      kv,
      atomicLimits: traits.atomic,
      refresh: traits.shared
        ? (names: readonly string[], reads: ReadSet) =>
          refreshSequences(kv, this.#volumes, names, reads)
        : undefined,
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
    const commitSeconds = this.#metrics?.histogram(
      "trackmirror_tracker_commit_seconds",
      "Time to commit one batch of tracking commands to Deno KV (every atomic of it); a " +
        "tracking command is answered after its batch's commit",
    );
    this.#committer = new GroupCommitter<TrackOp>(async (ops) => {
      this.#countBatch(ops.length);
      // Only a shared store's atomics carry checks, so only there can a batch conflict.
      const end = commitSeconds?.startTimer();
      try {
        return await retryOnConflict("Commit batch", () => commitBatch(ctx, ops), {
          random,
          onConflict: () => {
            this.#countConflict();
            resetOutcomes(ops);
          },
        });
      } finally {
        end?.();
      }
    }, {
      queueOpsMax: opts.queueOpsMax ?? queueOpsMaxDefault,
      batchWeightMax: traits.shared ? sharedBatchPieces(traits) : batchPiecesMax,
    });
    // A shared store is read per request; there is nothing to load (and no old records to fix).
    this.#ready = traits.shared ? Promise.resolve() : this.#load();
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
    let event: EventInput | undefined;
    const v = await this.#committer.exclusive(async () => {
      if (this.#shared) return await this.#registerShared(name, reg);
      const existing = this.#volumes.get(name);
      const record = decideRegistration(
        existing?.record,
        name,
        reg,
        this.#clock.now(),
        this.#newGeneration,
      );
      event = registrationEvent(existing?.record, record, reg.takeover ?? false);
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
    if (event) emit(event);
    return await this.#info(v);
  }

  /** Registration on a shared store (shared_state.ts), retried when another tracker raced it. */
  async #registerShared(name: string, reg: Registration): Promise<VolumeState> {
    const record = await retryOnConflict(
      `Registration of volume "${name}"`,
      () =>
        registerOnce(this.#kv, name, reg, {
          now: this.#clock.now(),
          newGeneration: this.#newGeneration,
          volumesMax,
          remember: (r) => this.#remember(r),
        }),
      { random: this.#random, onConflict: () => this.#countConflict() },
    );
    return this.#remember(record);
  }

  /** Keeps `record` (read from or written to the store) in memory; the volume's state object. */
  #remember(record: VolumeRecord): VolumeState {
    const known = this.#volumes.get(record.name);
    if (known) {
      known.record = record;
      return known;
    }
    const fresh = volumeState(record, 0);
    this.#volumes.set(record.name, fresh);
    return fresh;
  }

  /** One volume; 404 when unknown. */
  async info(name: string): Promise<VolumeInfo> {
    return await this.#info(await this.#volume(name));
  }

  /** Every registered volume, by name. */
  async list(): Promise<VolumeInfo[]> {
    await this.#ready;
    if (this.#shared) {
      // Volumes another tracker registered (or this one, before a restart) are in the store only.
      for await (const e of this.#kv.list<VolumeRecord>({ prefix: volumesPrefix })) {
        this.#remember(e.value);
      }
    }
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
    if (op.regionsNew > 0 && this.#dirtyTold.get(name) !== true) {
      await this.#tellDirtiness(v, op.regionsNew);
    }
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
    if (op.regionsCleared > 0) await this.#tellDirtiness(v, 0);
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
    if (this.#shared) {
      v.seq = Math.max(v.seq, (await this.#kv.get<number>(seqKey(name))).value ?? 0);
    }
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

  /**
   * Emits `volume.dirty` / `volume.clean` when `v` changed between the two since last told.
   * Before anything was told (a fresh process), a mark is the first after clean only when the
   * volume holds no more regions than it marked new.
   */
  async #tellDirtiness(v: VolumeState, regionsNew: number): Promise<void> {
    const name = v.record.name;
    let info: VolumeInfo;
    try {
      info = await this.#info(v);
    } catch {
      return; // closing: nothing more to tell
    }
    const dirty = info.dirtyRegions > 0;
    const before = this.#dirtyTold.get(name);
    this.#dirtyTold.set(name, dirty);
    if (before === dirty) return;
    if (before === undefined && (!dirty || info.dirtyRegions > regionsNew)) return;
    emit(dirtinessEvent(name, dirty, info));
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
    if (this.#shared) {
      // The record (lease, epoch, generation) may have been changed by another tracker.
      const stored = await this.#kv.get<VolumeRecord>(volumeKey(name));
      if (stored.value) return this.#remember(stored.value);
    }
    const v = this.#volumes.get(name);
    if (!v) throw notFound(`Volume "${name}" is not registered`);
    return v;
  }

  /** The volume as the API shows it; its summaries are loaded by the committer when missing. */
  async #info(v: VolumeState): Promise<VolumeInfo> {
    if (!this.#shared && v.summary && v.activity) return volumeInfo(v, v.summary, v.activity);
    return await this.#committer.exclusive(async () => {
      if (this.#shared) {
        const seq = await this.#kv.get<number>(seqKey(v.record.name));
        v.seq = seq.value ?? 0;
        v.summary = null;
        v.activity = null;
      }
      return volumeInfo(v, await this.#summary(v), await this.#activity(v));
    });
  }

  /** The volume's summary; loads it from KV first if needed (inside the committer only). */
  async #summary(v: VolumeState): Promise<Map<number, SegmentSummary>> {
    const load = () => loadSummary(this.#kv, v);
    const name = v.record.name;
    return v.summary ??= this.#stamped
      ? await this.#stamped.get(`dirty/${name}`, dirtyPrefix(name), load)
      : await load();
  }

  /** The volume's activity summary; loads it from KV first if needed (inside the committer only). */
  async #activity(v: VolumeState): Promise<ActivitySummary> {
    const name = v.record.name;
    const load = () => loadActivity(this.#kv, name);
    return v.activity ??= this.#stamped
      ? await this.#stamped.get(`activity/${name}`, activityPrefix(name), load)
      : await load();
  }

  #countConflict(): void {
    this.stats.conflicts++;
    this.#metrics?.count(
      "trackmirror_tracker_commit_conflicts_total",
      "Commit attempts retried because another tracker changed what they read",
    );
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
