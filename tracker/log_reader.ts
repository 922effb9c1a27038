/**
 * One page of a volume's tracking log: its dirty regions, merged into extents, walked in region
 * order from a cursor. A page holds at most `limit` extents and reads at most
 * `logSegmentsPerPageMax` segments (≤ 64 × 24 KiB of mark records), so no walk builds a large log
 * in memory; an extent running past the segment bound is split there and continues on the next page.
 *
 * The cursor is "token:nextRegion": every page of a walk carries the first page's token, so a clear
 * made with it keeps whatever was marked after the walk began.
 */
import { regionsPerSegment } from "../src/dirty_bitmap.ts";
import { extentOfRegions } from "../src/extent.ts";
import type { LogExtent, LogPage } from "../src/schemas.ts";
import { storedSegments } from "./segment_io.ts";
import { dirtyKey, dirtyPrefix } from "./kv_layout.ts";
import type { TrackerStore } from "./store/tracker_store.ts";
import type { SegmentCache } from "./segment_cache.ts";
import { SegmentState } from "./segment_state.ts";
import type { VolumeState } from "./volume_state.ts";

/** Most segments one log page reads. */
export const logSegmentsPerPageMax = 64;

/** Where a page starts and what it keeps. */
export interface LogWalk {
  token: number;
  /** First region index to consider. */
  fromRegion: number;
  /** Keep regions last marked at or after this time. */
  since?: number;
  /** Keep regions first marked at or before this time. */
  until?: number;
  /** Most extents in the page. */
  limit: number;
}

interface Pending {
  first: number;
  end: number;
  firstAt: number;
  lastAt: number;
}

/** Reads one page of the log; see the file comment. */
export async function readLogPage(
  kv: TrackerStore,
  cache: SegmentCache,
  v: VolumeState,
  walk: LogWalk,
): Promise<LogPage> {
  const { name, regionBytes, sizeBytes } = v.record;
  const segments = await dirtySegmentsFrom(
    kv,
    name,
    Math.floor(walk.fromRegion / regionsPerSegment),
  );
  const reading = segments.slice(0, logSegmentsPerPageMax);
  const stored = await storedSegments(kv, cache, name, reading, false);
  const since = walk.since ?? -Infinity;
  const until = walk.until ?? Infinity;

  const extents: LogExtent[] = [];
  const emit = (p: Pending): boolean => {
    if (extents.length >= walk.limit) return false;
    const { offset, length } = extentOfRegions(
      { first: p.first, count: p.end - p.first },
      regionBytes,
      sizeBytes,
    );
    extents.push({ offset, length, firstMarkedAt: p.firstAt, lastMarkedAt: p.lastAt });
    return true;
  };
  let pending: Pending | null = null;
  // Where the next page starts; null when the walk reached the end.
  let next: number | null = segments.length > reading.length
    ? segments[reading.length] * regionsPerSegment
    : null;
  walk: for (const segment of reading) {
    const state = SegmentState.decode(stored.get(segment)!, `${name}/${segment}`);
    const base = segment * regionsPerSegment;
    for (let bit = Math.max(0, walk.fromRegion - base); bit < regionsPerSegment; bit++) {
      if (!state.has(bit)) continue;
      const firstAt = state.firstAt[bit];
      const lastAt = state.lastAt[bit];
      if (lastAt < since || firstAt > until) continue;
      const region = base + bit;
      if (pending && pending.end === region) {
        pending.end++;
        pending.firstAt = Math.min(pending.firstAt, firstAt);
        pending.lastAt = Math.max(pending.lastAt, lastAt);
        continue;
      }
      if (pending && !emit(pending)) {
        next = pending.first;
        pending = null;
        break walk;
      }
      pending = { first: region, end: region + 1, firstAt, lastAt };
    }
  }
  if (pending && !emit(pending)) next = pending.first;
  return {
    volume: name,
    regionBytes,
    sizeBytes,
    token: String(walk.token),
    extents,
    nextCursor: next === null ? null : `${walk.token}:${next}`,
  };
}

/** Dirty segment indexes from `segment` on: at most one more than a page reads. */
async function dirtySegmentsFrom(
  kv: TrackerStore,
  name: string,
  segment: number,
): Promise<number[]> {
  const out: number[] = [];
  const iter = kv.list(
    { prefix: dirtyPrefix(name), start: dirtyKey(name, segment) },
    { limit: logSegmentsPerPageMax + 1 },
  );
  for await (const entry of iter) out.push(entry.key[2] as number);
  return out;
}
