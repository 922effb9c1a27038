/**
 * Loads what a commit batch works on: committed dirty segments (bitmap and mark record in one
 * snapshot) and hosts' activity bitmaps, from the caches when they hold them, else from KV (then
 * cached). Called inside the committer only, so the cache and KV agree.
 */
import { segmentBytes } from "../../src/dirty_bitmap.ts";
import { activityCount, activityScope, readActivitySegments } from "../activity_state.ts";
import type { BatchContext } from "./batch_context.ts";
import { type HostOp, isHostOp, type Piece, type SegmentWork, touchesDirty } from "./batch_ops.ts";
import { storedSegments } from "../segment_io.ts";
import { SegmentState, type StoredSegment } from "../segment_state.ts";
import type { ReadSet } from "../store/read_set.ts";
import type { VolumeState } from "../volume_state.ts";

/**
 * The decoded form of committed segments, keyed by the stored object the segment cache holds for
 * them: a commit keeps the state it just encoded, so the next commit of that segment (a host's
 * next mark there) skips decoding the whole mark record again (24 KiB of working state and a pass
 * over every dirty region, per mark). Weak, so an entry lives no longer than its stored object:
 * at most one per cached segment (≤ segmentCacheMax × 24 KiB more), none once the cache dropped
 * it. An entry is taken (removed) when a batch loads it, because the batch then changes it: a
 * batch that fails leaves nothing behind that could pass for a committed state.
 */
const decodedSegments = new WeakMap<StoredSegment, SegmentState>();

/** Remembers `state` as the decoded form of `stored` (what `state.encode()` just returned). */
export function rememberDecoded(stored: StoredSegment, state: SegmentState): void {
  decodedSegments.set(stored, state);
}

/** A working copy of `stored`: its remembered decoded form (taken), else decoded now. */
function workingState(stored: StoredSegment | null, what: string): SegmentState {
  const state = stored ? decodedSegments.get(stored) : undefined;
  if (!state) return SegmentState.decode(stored, what);
  decodedSegments.delete(stored!);
  return state;
}

/**
 * The committed state of a window of segments, ready to apply pieces to: the dirty state where a
 * piece may change it, and the activity bits of every host a piece works on (a copy; a segment
 * the activity summary knows to be clean is not read).
 */
export async function loadWindow(
  ctx: BatchContext,
  v: VolumeState,
  window: readonly number[],
  segments: ReadonlyMap<number, readonly Piece[]>,
  reads?: ReadSet,
): Promise<Map<number, SegmentWork>> {
  const name = v.record.name;
  const dirtyWanted: number[] = [];
  const activityWanted: Array<[string, number]> = [];
  const works = new Map<number, SegmentWork>();
  for (const segment of window) {
    const pieces = segments.get(segment)!;
    if (pieces.some((p) => touchesDirty(p.op))) dirtyWanted.push(segment);
    const hosts = new Set(pieces.filter((p) => isHostOp(p.op)).map((p) => (p.op as HostOp).host));
    for (const host of hosts) activityWanted.push([host, segment]);
    works.set(segment, { dirty: null, activity: new Map() });
  }
  const [dirty, activity] = await Promise.all([
    storedSegments(ctx.kv, ctx.cache, name, dirtyWanted, true, reads),
    loadActivity(ctx, v, activityWanted, reads),
  ]);
  for (const [segment, stored] of dirty) {
    works.get(segment)!.dirty = workingState(stored, `${name}/${segment}`);
  }
  activityWanted.forEach(([host, segment], i) => {
    works.get(segment)!.activity.set(host, activity[i]);
  });
  return works;
}

/** Working copies of activity segments `[host, segment]`: from the summary, cache or KV. */
async function loadActivity(
  ctx: BatchContext,
  v: VolumeState,
  wanted: ReadonlyArray<readonly [string, number]>,
  reads?: ReadSet,
): Promise<Uint8Array[]> {
  if (wanted.length === 0) return [];
  const name = v.record.name;
  const summary = await ctx.activity(v);
  const out: Uint8Array[] = [];
  const missing: number[] = [];
  wanted.forEach(([host, segment], i) => {
    const hit = activityCount(summary, host, segment) === 0
      ? null
      : ctx.activityCache.get(activityScope(name, host), segment);
    if (hit === undefined) missing.push(i);
    out[i] = hit ? hit.slice() : new Uint8Array(segmentBytes);
  });
  const found = await readActivitySegments(ctx.kv, name, missing.map((i) => wanted[i]), reads);
  missing.forEach((i, j) => {
    const [host, segment] = wanted[i];
    ctx.activityCache.set(activityScope(name, host), segment, found[j]);
    if (found[j]) out[i] = found[j]!.slice();
  });
  return out;
}
