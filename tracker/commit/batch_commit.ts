/**
 * Commits one batch of operations (marks, clears, and hosts' activity marks, retires and
 * promotes; batch_ops.ts): groups their region pieces by (volume, segment), applies every
 * operation touching a segment in queue order to one decoded copy of it (its dirty state and the
 * activity bits of the hosts involved), and writes the changed segments with as few atomics as
 * Deno KV's limits allow (atomic_writer.ts).
 *
 * Order of the writes: first each marked volume's new sequence number, then the segments. So what
 * is on disk never holds a mark sequence above the stored sequence, even if a later chunk fails.
 * Segments are worked on `commitWindowSegments` at a time, so memory stays bounded however many
 * segments one batch touches. The in-memory sequence (what tokens are made of) moves only once
 * its write committed, so a token handed out is never above what a restart would load.
 *
 * Crash safety of a promote: a promote of many segments may need several atomics, and the process
 * may die between any two. Everything one segment's pieces change — its "dirty" and "marked" keys
 * and every host's activity key of that segment — is one group, and a group always lands in one
 * atomic, so the activity bits of a region are never cleared in an atomic that does not also set
 * its dirty bit. A crash after some chunks leaves the promoted segments dirty and the rest still
 * active; promoting again finishes the job (and re-marking a dirty region only moves its last mark).
 * The sequence is written before any segment, so promoted marks are newer than every token issued.
 *
 * On a shared store (several trackers over one etcd cluster) nothing in memory is trusted: the
 * batch first re-reads each touched volume's mark sequence (ctx.refresh), reads every segment it
 * changes from the store (caches are off), and every atomic checks that what it writes is still at
 * the versionstamp read, and that its volume's sequence is still the one it read. There the new
 * sequence is written last (with or after the last segment): a log token is read from the store,
 * so token T must mean that every mark with sequence ≤ T is already visible — else a reader could
 * miss a mark that a clear with its token then removes. The sequence checks make that hold
 * across trackers: no chunk lands once another batch moved the sequence. Marks on disk may carry
 * a sequence above the stored one (a batch that died, or lost a race, after some chunks): a clear
 * with any token already issued keeps them, which errs on the safe side. A failed check throws
 * StoreConflict; atomics that landed before it are each complete, and the caller retries the
 * whole batch from a fresh read.
 */
import { popcount, regionsPerSegment, segmentPieces } from "../../src/dirty_bitmap.ts";
import { badRequest, conflict } from "../../src/errors.ts";
import type { RegionRun } from "../../src/extent.ts";
import { activityHostsMax, activityScope, updateActivity } from "../activity_state.ts";
import { ReadSet } from "../store/read_set.ts";
import { AtomicWriter, type Mutation } from "./atomic_writer.ts";
import { applyPieces, type Piece, type TrackOp } from "./batch_ops.ts";
import type { BatchContext } from "./batch_context.ts";
import { activityKey, dirtyKey, markedKey, seqKey } from "../kv_layout.ts";
import type { StoredSegment } from "../segment_state.ts";
import { loadWindow, rememberDecoded } from "./segment_loader.ts";
import { summarizeSegment, updateSummary, type VolumeState } from "../volume_state.ts";

export type { BatchContext } from "./batch_context.ts";
export type { ClearOp, MarkOp, TrackOp } from "./batch_ops.ts";

/** Segments decoded and applied at a time within one batch (≤ 256 × 24 KiB of working state). */
export const commitWindowSegments = 256;
/**
 * Shared store: most segments of a batch read ahead, in parallel, before the first write
 * (≤ 1024 × 24.7 KiB when all are fully dirty); one volume after another would cost a store
 * round trip per volume, as nothing is cached there.
 */
export const prefetchSegmentsMax = 1024;
/** Shared store: windows read at once while prefetching. */
export const prefetchWindowsConcurrent = 16;

/** Pieces of a batch: volume → segment → pieces in queue order. */
type PieceIndex = Map<string, Map<number, Piece[]>>;

/** Commits `ops` as one batch; settles nothing itself (the committer does). */
export async function commitBatch(ctx: BatchContext, ops: readonly TrackOp[]): Promise<void> {
  const reads = ctx.refresh ? new ReadSet() : undefined;
  if (ctx.refresh) await ctx.refresh([...new Set(ops.map((op) => op.volume))], reads!);
  await rejectInvalid(ctx, ops);
  const { index, promoting } = await indexPieces(ctx, ops);
  const seqs = batchSeqs(ctx, ops, promoting);
  const writer = new AtomicWriter(ctx.kv, ctx.onAtomic, ctx.atomicLimits, reads);
  const prefetched = reads ? await prefetch(ctx, index, reads) : new Map<string, SegmentWorks>();
  const seqCommitted = new Set<string>();
  const touched: Array<[VolumeState, number]> = [];
  const touchedActivity: Array<[VolumeState, string, number]> = [];
  try {
    const writeSeqs = async () => {
      for (const [name, seq] of seqs) {
        await writer.add([{ key: seqKey(name), value: seq }], () => seqCommitted.add(name));
      }
    };
    // Deno KV: the sequence first (memory hands out tokens only after the whole batch). Shared
    // store: the sequence last, as tokens are read from the store (see the file comment).
    if (!reads) await writeSeqs();
    for (const name of [...index.keys()].sort()) {
      const v = ctx.volume(name);
      const segments = index.get(name)!;
      const order = [...segments.keys()].sort((a, b) => a - b);
      for (let i = 0; i < order.length; i += commitWindowSegments) {
        const window = order.slice(i, i + commitWindowSegments);
        const works = prefetched.get(`${name}/${i}`) ??
          await loadWindow(ctx, v, window, segments, reads);
        for (const segment of window) {
          const work = works.get(segment)!;
          if (work.dirty) touched.push([v, segment]);
          for (const host of work.activity.keys()) touchedActivity.push([v, host, segment]);
          const change = applyPieces(work, segments.get(segment)!, seqs.get(name) ?? v.seq);
          const group: Mutation[] = [];
          const after: Array<() => void> = [];
          if (change.dirty) {
            const state = work.dirty!;
            const stored = state.encode();
            const entry = summarizeSegment(v, segment, stored, state.count);
            group.push(...segmentMutations(name, segment, stored));
            after.push(() => {
              ctx.cache.set(name, segment, stored);
              if (stored) rememberDecoded(stored, state);
              updateSummary(v, segment, entry);
            });
          }
          for (const host of [...change.hosts].sort()) {
            const bits = work.activity.get(host)!.slice();
            const count = popcount(bits);
            const key = activityKey(name, host, segment);
            group.push(count > 0 ? { key, value: bits } : { key });
            after.push(() => {
              ctx.activityCache.set(activityScope(name, host), segment, count > 0 ? bits : null);
              if (v.activity) updateActivity(v.activity, host, segment, count);
            });
          }
          // One group, so one atomic: a promote's dirty marks land with its activity clears.
          // Shared store: the volume's sequence must still be the one read (ours is written last).
          const pins = seqs.has(name) ? [seqKey(name)] : [];
          if (group.length) await writer.add(group, () => after.forEach((fn) => fn()), pins);
        }
      }
    }
    if (reads) await writeSeqs();
    await writer.flush();
  } catch (err) {
    // An atomic that threw may or may not have landed: forget what we cached of its segments.
    for (const [v, segment] of touched) {
      ctx.cache.delete(v.record.name, segment);
      v.summary = null;
    }
    for (const [v, host, segment] of touchedActivity) {
      ctx.activityCache.delete(activityScope(v.record.name, host), segment);
      v.activity = null;
    }
    throw err;
  } finally {
    for (const name of seqCommitted) ctx.volume(name).seq = seqs.get(name)!;
  }
}

type SegmentWorks = Awaited<ReturnType<typeof loadWindow>>;

/**
 * Shared store: reads the first windows of the batch's volumes, up to `prefetchSegmentsMax`
 * segments, `prefetchWindowsConcurrent` at a time; keyed "volume/first index of the window".
 */
async function prefetch(
  ctx: BatchContext,
  index: PieceIndex,
  reads: ReadSet,
): Promise<Map<string, SegmentWorks>> {
  const jobs: Array<() => Promise<void>> = [];
  const out = new Map<string, SegmentWorks>();
  let budget = prefetchSegmentsMax;
  for (const name of [...index.keys()].sort()) {
    const segments = index.get(name)!;
    const order = [...segments.keys()].sort((a, b) => a - b);
    for (let i = 0; i < order.length && budget > 0; i += commitWindowSegments) {
      const window = order.slice(i, i + commitWindowSegments);
      budget -= window.length;
      jobs.push(async () => {
        out.set(`${name}/${i}`, await loadWindow(ctx, ctx.volume(name), window, segments, reads));
      });
    }
  }
  const workers = Array.from({ length: prefetchWindowsConcurrent }, async () => {
    for (let job = jobs.shift(); job; job = jobs.shift()) await job();
  });
  await Promise.all(workers);
  return out;
}

/**
 * Fails the operations that cannot be applied, before anything is written: clears with tokens
 * the log never issued, and activity of one host too many on a volume.
 */
async function rejectInvalid(ctx: BatchContext, ops: readonly TrackOp[]): Promise<void> {
  const hosts = new Map<string, Set<string>>();
  for (const op of ops) {
    const v = ctx.volume(op.volume);
    if (op.kind === "clear" && op.token > v.seq) {
      op.error = badRequest(
        `Token "${op.token}" is newer than volume "${op.volume}"'s tracking state ${v.seq}: ` +
          `it was not issued by this tracker's log`,
      );
    }
    if (op.kind !== "activity") continue;
    let known = hosts.get(op.volume);
    if (!known) hosts.set(op.volume, known = new Set((await ctx.activity(v)).keys()));
    if (known.has(op.host)) continue;
    if (known.size >= activityHostsMax) {
      op.error = conflict(
        `Volume "${op.volume}" already holds activity marks of ${known.size} hosts; host ` +
          `"${op.host}" cannot add more until one of them is promoted or retired`,
      );
    } else known.add(op.host);
  }
}

/**
 * New sequence number of each volume marked in the batch: by a mark, or by a promote that may
 * find activity (one with pieces).
 */
function batchSeqs(
  ctx: BatchContext,
  ops: readonly TrackOp[],
  promoting: ReadonlySet<TrackOp>,
): Map<string, number> {
  const seqs = new Map<string, number>();
  for (const op of ops) {
    if (op.kind === "mark" || promoting.has(op)) seqs.set(op.volume, ctx.volume(op.volume).seq + 1);
  }
  return seqs;
}

/**
 * Pieces of every operation, by volume and segment, each segment's in queue order; and the
 * promotes that have any. A clear only needs the segments that can hold dirty regions (dirty ones
 * and ones an earlier operation of the batch touches); a retire or promote only the segments that
 * can hold the host's activity (active ones and ones an earlier activity op of the host touches).
 */
async function indexPieces(
  ctx: BatchContext,
  ops: readonly TrackOp[],
): Promise<{ index: PieceIndex; promoting: Set<TrackOp> }> {
  const index: PieceIndex = new Map();
  const promoting = new Set<TrackOp>();
  // Volume → host → segments its activity ops touch earlier in the batch.
  const hostSegments = new Map<string, Map<string, Set<number>>>();
  for (const op of ops) {
    if (op.error) continue;
    let segments = index.get(op.volume);
    if (!segments) index.set(op.volume, segments = new Map());
    const add = (segment: number, bit: number, count: number) => {
      let list = segments.get(segment);
      if (!list) segments.set(segment, list = []);
      list.push({ op, bit, count });
    };
    const v = ctx.volume(op.volume);
    if (op.kind === "mark" || op.kind === "activity") {
      for (const run of op.runs) {
        for (const [s, bit, count] of segmentPieces(run)) add(s, bit, count);
      }
      if (op.kind === "activity") {
        await ctx.activity(v);
        let byHost = hostSegments.get(op.volume);
        if (!byHost) hostSegments.set(op.volume, byHost = new Map());
        let mine = byHost.get(op.host);
        if (!mine) byHost.set(op.host, mine = new Set());
        for (const run of op.runs) for (const [s] of segmentPieces(run)) mine.add(s);
      }
      continue;
    }
    let candidates: number[];
    if (op.kind === "clear") {
      candidates = [...new Set([...(await ctx.summary(v)).keys(), ...segments.keys()])];
    } else {
      const active = (await ctx.activity(v)).get(op.host)?.segments.keys() ?? [];
      const earlier = hostSegments.get(op.volume)?.get(op.host) ?? [];
      candidates = [...new Set([...active, ...earlier])];
    }
    candidates.sort((a, b) => a - b);
    const runs = op.kind === "promote" || op.runs === null
      ? [{ first: 0, count: v.regionCount }]
      : op.runs;
    for (const run of runs) piecesWithin(run, candidates, add);
    if (op.kind === "promote" && candidates.length > 0) promoting.add(op);
  }
  return { index, promoting };
}

/** Calls `add` for the part of `run` inside each of the ascending `candidates` segments. */
function piecesWithin(
  run: RegionRun,
  candidates: readonly number[],
  add: (segment: number, bit: number, count: number) => void,
): void {
  const end = run.first + run.count;
  for (
    let i = lowerBound(candidates, Math.floor(run.first / regionsPerSegment));
    i < candidates.length;
    i++
  ) {
    const segment = candidates[i];
    if (segment * regionsPerSegment >= end) break;
    const from = Math.max(run.first, segment * regionsPerSegment);
    const to = Math.min(end, (segment + 1) * regionsPerSegment);
    if (to > from) add(segment, from - segment * regionsPerSegment, to - from);
  }
}

/** Index of the first element of ascending `sorted` that is ≥ `value`. */
function lowerBound(sorted: readonly number[], value: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid] < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The mutations writing (or, when clean, deleting) one segment. */
function segmentMutations(name: string, segment: number, stored: StoredSegment | null): Mutation[] {
  if (!stored) return [{ key: dirtyKey(name, segment) }, { key: markedKey(name, segment) }];
  return [
    { key: dirtyKey(name, segment), value: stored.bits },
    { key: markedKey(name, segment), value: stored.record },
  ];
}
