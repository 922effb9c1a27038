/**
 * A registered volume as the tracker holds it in memory: its record, its mark sequence, a
 * per-segment summary of its dirty regions and one of each host's activity regions (each loaded on
 * first need, then kept current by every commit), plus the checks that turn a request's extents
 * into region runs of that volume.
 */
import assert from "node:assert/strict";
import { popcount, regionsPerSegment, testBit } from "../src/dirty_bitmap.ts";
import { badRequest } from "../src/errors.ts";
import { checkRange, type Extent, regionCount, type RegionRun, regionsOf } from "../src/extent.ts";
import { isoTime } from "../src/iso_time.ts";
import type { VolumeInfo } from "../src/schemas.ts";
import { type ActivitySummary, activityTotals } from "./activity_state.ts";
import { dirtyPrefix, markedPrefix, type VolumeRecord } from "./kv_layout.ts";
import type { TrackerStore } from "./store/tracker_store.ts";
import { markEntryBytes, oldestInRecord, type StoredSegment } from "./segment_state.ts";

/** What the summary keeps of one dirty segment. */
export interface SegmentSummary {
  /** Dirty regions in the segment. */
  count: number;
  /** Earliest first-marked time among them. */
  oldest: number;
  /** True when the volume's last region lies in this segment and is dirty. */
  tail: boolean;
}

/** A registered volume in memory. */
export interface VolumeState {
  record: VolumeRecord;
  /** Regions of the volume; the last may be partial. */
  regionCount: number;
  /** The last committed mark sequence; tokens handed out never exceed it. */
  seq: number;
  /** Dirty segments → summary; null until loaded (or after a failed commit made it unsure). */
  summary: Map<number, SegmentSummary> | null;
  /** Each host's activity regions by segment; null until loaded (or after a failed commit). */
  activity: ActivitySummary | null;
}

/** A fresh in-memory state for a record. */
export function volumeState(record: VolumeRecord, seq: number): VolumeState {
  return {
    record,
    regionCount: regionCount(record.sizeBytes, record.regionBytes),
    seq,
    summary: null,
    activity: null,
  };
}

/** The summary entry of a stored segment, or null when it is clean. */
export function summarizeSegment(
  v: VolumeState,
  segment: number,
  stored: StoredSegment | null,
  count: number,
): SegmentSummary | null {
  if (!stored) return null;
  const lastRegion = v.regionCount - 1;
  const tail = Math.floor(lastRegion / regionsPerSegment) === segment &&
    testBit(stored.bits, lastRegion % regionsPerSegment);
  return { count, oldest: oldestInRecord(stored.record), tail };
}

/** Applies a committed segment to the summary, if one is loaded. */
export function updateSummary(v: VolumeState, segment: number, entry: SegmentSummary | null): void {
  if (!v.summary) return;
  if (entry) v.summary.set(segment, entry);
  else v.summary.delete(segment);
}

/**
 * Builds the summary from KV. Call only where no commit can interleave (inside the committer):
 * the two listings must see the same state.
 */
export async function loadSummary(
  kv: TrackerStore,
  v: VolumeState,
): Promise<Map<number, SegmentSummary>> {
  const name = v.record.name;
  const summary = new Map<number, SegmentSummary>();
  const marked = kv.list<Uint8Array>({ prefix: markedPrefix(name) })[Symbol.asyncIterator]();
  for await (const d of kv.list<Uint8Array>({ prefix: dirtyPrefix(name) })) {
    const m = await marked.next();
    const segment = d.key[2] as number;
    assert.ok(
      !m.done && m.value.key[2] === segment,
      `Segment ${name}/${segment} has no mark record`,
    );
    const stored = { bits: d.value, record: m.value.value };
    const count = popcount(stored.bits);
    if (count === 0 || stored.record.length !== count * markEntryBytes) {
      throw new Error(
        `Segment ${name}/${segment} is corrupt: ${count} dirty regions, ${stored.record.length} mark record bytes`,
      );
    }
    summary.set(segment, summarizeSegment(v, segment, stored, count)!);
  }
  assert.ok((await marked.next()).done, `Volume "${name}" has mark records without bitmaps`);
  return summary;
}

/** The volume as the API shows it, from its loaded summaries. */
export function volumeInfo(
  v: VolumeState,
  summary: Map<number, SegmentSummary>,
  activity: ActivitySummary,
): VolumeInfo {
  const { record } = v;
  let dirtyRegions = 0;
  let oldest = Infinity;
  let tailCut = 0;
  for (const s of summary.values()) {
    dirtyRegions += s.count;
    if (s.oldest < oldest) oldest = s.oldest;
    if (s.tail) tailCut = v.regionCount * record.regionBytes - record.sizeBytes;
  }
  return {
    name: record.name,
    sizeBytes: record.sizeBytes,
    regionBytes: record.regionBytes,
    ownerHost: record.ownerHost,
    ownerUrl: record.ownerUrl,
    leaseExpiresAt: record.leaseExpiresAt,
    leaseExpiresAtIso: isoTime(record.leaseExpiresAt),
    ...(record.ownerInstance === undefined ? {} : { ownerInstance: record.ownerInstance }),
    leaseEpoch: record.leaseEpoch ?? 0,
    dirtyRegions,
    dirtyBytes: dirtyRegions * record.regionBytes - tailCut,
    oldestMarkAt: Number.isFinite(oldest) ? oldest : null,
    oldestMarkAtIso: isoTime(Number.isFinite(oldest) ? oldest : null),
    ...activityTotals(activity),
    generation: record.generation,
    markSeq: v.seq,
  };
}

/**
 * Checks that every extent lies inside the volume (400 naming the extent otherwise) and returns
 * the regions they touch as sorted runs, overlapping and adjacent ones merged.
 */
export function runsOfExtents(v: VolumeState, extents: readonly Extent[]): RegionRun[] {
  const { name, sizeBytes, regionBytes } = v.record;
  const runs: RegionRun[] = [];
  extents.forEach((e, i) => {
    try {
      checkRange(e.offset, e.length, sizeBytes, `volume "${name}"`);
    } catch (err) {
      throw badRequest(`extents.${i}: ${(err as Error).message}`);
    }
    runs.push(regionsOf(e.offset, e.length, regionBytes));
  });
  runs.sort((a, b) => a.first - b.first);
  const merged: RegionRun[] = [];
  for (const r of runs) {
    const last = merged.at(-1);
    if (last && r.first <= last.first + last.count) {
      last.count = Math.max(last.count, r.first + r.count - last.first);
    } else {
      merged.push({ ...r });
    }
  }
  return merged;
}

/** Number of segments a list of runs spans (the weight of an operation in a batch). */
export function segmentsSpanned(runs: readonly RegionRun[]): number {
  let n = 0;
  for (const r of runs) {
    n += Math.floor((r.first + r.count - 1) / regionsPerSegment) -
      Math.floor(r.first / regionsPerSegment) + 1;
  }
  return n;
}
