/**
 * The operations a commit batch holds, and how one segment's share of them (its pieces, in queue
 * order) changes that segment's dirty state and its hosts' activity bits. Pure and synchronous:
 * batch_commit.ts loads the segment before and writes it after.
 */
import { bitRuns, clearBits, popcount, segmentBytes, setBits } from "../../src/dirty_bitmap.ts";
import type { RegionRun } from "../../src/extent.ts";
import type { BatchOp } from "./group_commit.ts";
import type { SegmentState } from "../segment_state.ts";

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

/** Set `host`'s activity bits of the regions of `runs`. */
export interface ActivityOp extends BatchOp {
  kind: "activity";
  volume: string;
  host: string;
  runs: RegionRun[];
  regionsNew: number;
}

/** Clear `host`'s activity bits of the regions of `runs`. */
export interface RetireOp extends BatchOp {
  kind: "retire";
  volume: string;
  host: string;
  runs: RegionRun[];
  regionsRetired: number;
}

/** Mark dirty at `time` every activity region of `host`, and clear its activity bits. */
export interface PromoteOp extends BatchOp {
  kind: "promote";
  volume: string;
  host: string;
  time: number;
  regionsPromoted: number;
}

/** An operation of a commit batch. */
export type TrackOp = MarkOp | ClearOp | ActivityOp | RetireOp | PromoteOp;
/** The operations on a host's activity bits. */
export type HostOp = ActivityOp | RetireOp | PromoteOp;

/** True when `op` works on a host's activity bits. */
export function isHostOp(op: TrackOp): op is HostOp {
  return op.kind === "activity" || op.kind === "retire" || op.kind === "promote";
}

/** True when `op` may change the segment's dirty state (so it must be loaded). */
export function touchesDirty(op: TrackOp): boolean {
  return op.kind === "mark" || op.kind === "clear" || op.kind === "promote";
}

/** One operation's share of one segment: `count` regions from `bit`. */
export interface Piece {
  op: TrackOp;
  bit: number;
  count: number;
}

/** A segment being worked on: its dirty state (when loaded) and activity bits by host. */
export interface SegmentWork {
  dirty: SegmentState | null;
  activity: Map<string, Uint8Array>;
}

/** What applying the pieces changed: whether the dirty state did, and whose activity bits. */
export interface SegmentChange {
  dirty: boolean;
  hosts: Set<string>;
}

/**
 * Applies the pieces, in queue order, to the segment; `seq` is the batch's new mark sequence of
 * the volume. A promote moves the host's activity bits as they stand after the earlier pieces
 * into the dirty state, like a mark (first-marked time kept, last-marked time and sequence moved),
 * and clears them; batch_commit.ts writes both changes in one atomic.
 */
export function applyPieces(
  work: SegmentWork,
  pieces: readonly Piece[],
  seq: number,
): SegmentChange {
  const change: SegmentChange = { dirty: false, hosts: new Set() };
  const bitsOf = (host: string) => {
    let bits = work.activity.get(host);
    if (!bits) work.activity.set(host, bits = new Uint8Array(segmentBytes));
    return bits;
  };
  for (const { op, bit, count } of pieces) {
    switch (op.kind) {
      case "mark":
        op.regionsNew += work.dirty!.mark(bit, count, op.time, seq);
        change.dirty = true;
        break;
      case "clear": {
        const { cleared, kept } = work.dirty!.clear(bit, count, op.token);
        op.regionsCleared += cleared;
        op.regionsKept += kept;
        if (cleared > 0) change.dirty = true;
        break;
      }
      case "activity": {
        const added = setBits(bitsOf(op.host), bit, count);
        op.regionsNew += added;
        if (added > 0) change.hosts.add(op.host);
        break;
      }
      case "retire": {
        const removed = clearBits(bitsOf(op.host), bit, count);
        op.regionsRetired += removed;
        if (removed > 0) change.hosts.add(op.host);
        break;
      }
      case "promote": {
        const bits = bitsOf(op.host);
        if (popcount(bits) === 0) break;
        for (const run of bitRuns(bits)) {
          work.dirty!.mark(run.first, run.count, op.time, seq);
          op.regionsPromoted += run.count;
        }
        bits.fill(0);
        change.dirty = true;
        change.hosts.add(op.host);
        break;
      }
    }
  }
  return change;
}

/** Forgets what an attempt of a batch found, before the batch is tried again from a re-read. */
export function resetOutcomes(ops: readonly TrackOp[]): void {
  for (const op of ops) {
    delete op.error;
    switch (op.kind) {
      case "mark":
      case "activity":
        op.regionsNew = 0;
        break;
      case "clear":
        op.regionsCleared = 0;
        op.regionsKept = 0;
        break;
      case "retire":
        op.regionsRetired = 0;
        break;
      case "promote":
        op.regionsPromoted = 0;
        break;
    }
  }
}
