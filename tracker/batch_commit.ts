/**
 * Commits one batch of mark and clear operations: groups their region pieces by (volume, segment),
 * applies every operation touching a segment in queue order to one decoded copy of it, and writes
 * the changed segments with as few atomics as Deno KV's limits allow (atomic_writer.ts).
 *
 * Order of the writes: first each marked volume's new sequence number, then the segments. So what
 * is on disk never holds a mark sequence above the stored sequence, even if a later chunk fails.
 * Segments are worked on `commitWindowSegments` at a time, so memory stays bounded however many
 * segments one batch touches. The in-memory sequence (what tokens are made of) moves only once
 * its write committed, so a token handed out is never above what a restart would load.
 */
import { regionsPerSegment, segmentPieces } from "../src/dirty_bitmap.ts";
import { badRequest } from "../src/errors.ts";
import type { RegionRun } from "../src/extent.ts";
import { AtomicWriter, type Mutation } from "./atomic_writer.ts";
import type { BatchOp } from "./group_commit.ts";
import { dirtyKey, markedKey, seqKey } from "./kv_layout.ts";
import type { SegmentCache } from "./segment_cache.ts";
import { SegmentState, type StoredSegment } from "./segment_state.ts";
import {
  type SegmentSummary,
  summarizeSegment,
  updateSummary,
  type VolumeState,
} from "./volume_state.ts";

/** Segments decoded and applied at a time within one batch (≤ 256 × 24 KiB of working state). */
export const commitWindowSegments = 256;
/** Segments per `kv.getMany` (Deno KV reads at most 10 keys at once; two keys a segment). */
export const getManySegmentsMax = 5;

/** Mark the regions of `runs` at `time`. */
export interface MarkOp extends BatchOp {
  kind: "mark";
  volume: string;
  runs: RegionRun[];
  time: number;
  regionsNew: number;
}

/** Clear the regions of `runs` (all when null) last marked no later than `token`. */
export interface ClearOp extends BatchOp {
  kind: "clear";
  volume: string;
  runs: RegionRun[] | null;
  token: number;
  regionsCleared: number;
  regionsKept: number;
}

/** An operation of a commit batch. */
export type TrackOp = MarkOp | ClearOp;

/** What a batch needs of the store. */
export interface BatchContext {
  kv: Deno.Kv;
  cache: SegmentCache;
  volume(name: string): VolumeState;
  /** The volume's summary, loaded if needed; called inside the committer only. */
  summary(v: VolumeState): Promise<Map<number, SegmentSummary>>;
  /** Called after each atomic that committed. */
  onAtomic(): void;
}

interface Piece {
  op: TrackOp;
  bit: number;
  count: number;
}

/** Commits `ops` as one batch; settles nothing itself (the committer does). */
export async function commitBatch(ctx: BatchContext, ops: readonly TrackOp[]): Promise<void> {
  const seqs = batchSeqs(ctx, ops);
  const index = await indexPieces(ctx, ops);
  const writer = new AtomicWriter(ctx.kv, ctx.onAtomic);
  const seqCommitted = new Set<string>();
  const touched: Array<[VolumeState, number]> = [];
  try {
    for (const [name, seq] of seqs) {
      await writer.add([{ key: seqKey(name), value: seq }], () => seqCommitted.add(name));
    }
    for (const name of [...index.keys()].sort()) {
      const v = ctx.volume(name);
      const segments = index.get(name)!;
      const order = [...segments.keys()].sort((a, b) => a - b);
      for (let i = 0; i < order.length; i += commitWindowSegments) {
        const window = order.slice(i, i + commitWindowSegments);
        const loaded = await loadSegments(ctx, name, window);
        for (const segment of window) {
          touched.push([v, segment]);
          const state = SegmentState.decode(loaded.get(segment)!, `${name}/${segment}`);
          if (!applyPieces(state, segments.get(segment)!, seqs.get(name) ?? v.seq)) continue;
          const stored = state.encode();
          const entry = summarizeSegment(v, segment, stored, state.count);
          await writer.add(segmentMutations(name, segment, stored), () => {
            ctx.cache.set(name, segment, stored);
            updateSummary(v, segment, entry);
          });
        }
      }
    }
    await writer.flush();
  } catch (err) {
    // An atomic that threw may or may not have landed: forget what we cached of its segments.
    for (const [v, segment] of touched) {
      ctx.cache.delete(v.record.name, segment);
      v.summary = null;
    }
    throw err;
  } finally {
    for (const name of seqCommitted) ctx.volume(name).seq = seqs.get(name)!;
  }
}

/** New sequence number of each volume marked in the batch; rejects clears with unknown tokens. */
function batchSeqs(ctx: BatchContext, ops: readonly TrackOp[]): Map<string, number> {
  const seqs = new Map<string, number>();
  for (const op of ops) {
    const v = ctx.volume(op.volume);
    if (op.kind === "mark") seqs.set(op.volume, v.seq + 1);
    else if (op.token > v.seq) {
      op.error = badRequest(
        `Token "${op.token}" is newer than volume "${op.volume}"'s tracking state ${v.seq}: ` +
          `it was not issued by this tracker's log`,
      );
    }
  }
  return seqs;
}

/** Pieces of every operation, by volume and segment, each segment's in queue order. */
async function indexPieces(
  ctx: BatchContext,
  ops: readonly TrackOp[],
): Promise<Map<string, Map<number, Piece[]>>> {
  const index = new Map<string, Map<number, Piece[]>>();
  for (const op of ops) {
    if (op.error) continue;
    let segments = index.get(op.volume);
    if (!segments) index.set(op.volume, segments = new Map());
    const add = (segment: number, bit: number, count: number) => {
      let list = segments.get(segment);
      if (!list) segments.set(segment, list = []);
      list.push({ op, bit, count });
    };
    if (op.kind === "mark") {
      for (const run of op.runs) {
        for (const [s, bit, count] of segmentPieces(run)) add(s, bit, count);
      }
      continue;
    }
    // A clear only needs the segments that can hold dirty regions: dirty ones, and ones an
    // earlier operation of this batch touches.
    const v = ctx.volume(op.volume);
    const dirty = new Set([...(await ctx.summary(v)).keys(), ...segments.keys()]);
    const candidates = [...dirty].sort((a, b) => a - b);
    for (const run of op.runs ?? [{ first: 0, count: v.regionCount }]) {
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
  }
  return index;
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

/** Applies the pieces to the segment; returns true when it changed. */
function applyPieces(state: SegmentState, pieces: readonly Piece[], seq: number): boolean {
  let changed = false;
  for (const { op, bit, count } of pieces) {
    if (op.kind === "mark") {
      op.regionsNew += state.mark(bit, count, op.time, seq);
      changed = true;
    } else {
      const { cleared, kept } = state.clear(bit, count, op.token);
      op.regionsCleared += cleared;
      op.regionsKept += kept;
      if (cleared > 0) changed = true;
    }
  }
  return changed;
}

/** The mutations writing (or, when clean, deleting) one segment. */
function segmentMutations(name: string, segment: number, stored: StoredSegment | null): Mutation[] {
  if (!stored) return [{ key: dirtyKey(name, segment) }, { key: markedKey(name, segment) }];
  return [
    { key: dirtyKey(name, segment), value: stored.bits },
    { key: markedKey(name, segment), value: stored.record },
  ];
}

/** Committed state of the segments, from the cache or else KV (then cached). */
async function loadSegments(
  ctx: BatchContext,
  name: string,
  segments: readonly number[],
): Promise<Map<number, StoredSegment | null>> {
  const out = new Map<number, StoredSegment | null>();
  const missing: number[] = [];
  for (const s of segments) {
    const hit = ctx.cache.get(name, s);
    if (hit === undefined) missing.push(s);
    else out.set(s, hit);
  }
  const reads: Promise<void>[] = [];
  for (let i = 0; i < missing.length; i += getManySegmentsMax) {
    const group = missing.slice(i, i + getManySegmentsMax);
    reads.push(
      readSegments(ctx.kv, name, group).then((found) => {
        for (const [s, stored] of found) {
          out.set(s, stored);
          ctx.cache.set(name, s, stored);
        }
      }),
    );
  }
  await Promise.all(reads);
  return out;
}

/**
 * Reads segments from KV, each bitmap with its mark record in the same snapshot (one getMany),
 * so the pair always matches even while a commit is writing elsewhere.
 */
export async function readSegments(
  kv: Deno.Kv,
  name: string,
  segments: readonly number[],
): Promise<Map<number, StoredSegment | null>> {
  const keys = segments.flatMap((s) => [dirtyKey(name, s), markedKey(name, s)]);
  const entries = await kv.getMany<Uint8Array[]>(keys);
  const out = new Map<number, StoredSegment | null>();
  segments.forEach((s, i) => {
    const bits = entries[2 * i].value;
    const record = entries[2 * i + 1].value;
    if ((bits === null) !== (record === null)) {
      throw new Error(`Segment ${name}/${s} has a bitmap or a mark record but not both`);
    }
    out.set(s, bits && record ? { bits, record } : null);
  });
  return out;
}
