/**
 * One page of a volume's activity marks: one host's (or every host's, host by host in name order)
 * activity regions, merged into extents, walked from a cursor "host:region". A page holds at most
 * `limit` extents and reads at most `limit` and at most `activitySegmentsPerPageMax` activity
 * segments (128 B each, 128 KiB in all), so a walk costs reads in proportion to what it returns; an
 * extent running past the segment bound is split there and continues on the next page.
 *
 * Activity is read from KV as committed, segment by segment: a page is not a snapshot, and marks
 * recorded or retired while a walk goes on may or may not show. Nothing depends on a walk being
 * exact: promote works inside the committer on the committed state, not on a page.
 */
import { regionsPerSegment, testBit } from "../src/dirty_bitmap.ts";
import { badRequest } from "../src/errors.ts";
import { extentOfRegions } from "../src/extent.ts";
import type { ActivityExtent, ActivityPage } from "../src/schemas.ts";
import { checkActivityBits } from "./activity_state.ts";
import { activityHostPrefix, activityKey, activityPrefix } from "./kv_layout.ts";
import type { TrackerStore } from "./store/tracker_store.ts";
import type { VolumeState } from "./volume_state.ts";

/** Most activity segments one page reads. */
export const activitySegmentsPerPageMax = 1024;

/** What a page shows and where it starts. */
export interface ActivityWalk {
  /** Only this host's activity; every host's when absent. */
  host?: string;
  /** "host:region" from the previous page's nextCursor. */
  cursor?: string;
  /** Most extents in the page. */
  limit: number;
}

interface Pending {
  host: string;
  first: number;
  end: number;
}

/** Reads one page of activity; 400 naming the cursor when it does not belong to this walk. */
export async function readActivityPage(
  kv: TrackerStore,
  v: VolumeState,
  walk: ActivityWalk,
): Promise<ActivityPage> {
  const { name, regionBytes, sizeBytes } = v.record;
  let from: { host: string; region: number } | null = null;
  if (walk.cursor !== undefined) {
    const at = walk.cursor.lastIndexOf(":");
    from = { host: walk.cursor.slice(0, at), region: Number(walk.cursor.slice(at + 1)) };
    if (
      !Number.isSafeInteger(from.region) || from.region > v.regionCount ||
      (walk.host !== undefined && from.host !== walk.host)
    ) {
      throw badRequest(
        `Cursor "${walk.cursor}" does not belong to an activity walk of volume "${name}"` +
          (walk.host ? ` for host "${walk.host}"` : ""),
      );
    }
  }
  const prefix = walk.host === undefined
    ? activityPrefix(name)
    : activityHostPrefix(name, walk.host);
  const start = from
    ? activityKey(name, from.host, Math.floor(from.region / regionsPerSegment))
    : undefined;
  // Each segment read holds at least one region, so `limit` segments fill a page.
  const segmentsMax = Math.min(activitySegmentsPerPageMax, walk.limit);
  const entries: Array<{ host: string; segment: number; bits: Uint8Array }> = [];
  const iter = kv.list<Uint8Array>(start ? { prefix, start } : { prefix }, {
    limit: segmentsMax + 1,
  });
  for await (const e of iter) {
    const host = e.key[2] as string;
    const segment = e.key[3] as number;
    entries.push({ host, segment, bits: checkActivityBits(e.value, `${name}/${host}/${segment}`) });
  }
  const reading = entries.slice(0, segmentsMax);
  const beyond = entries[segmentsMax];
  let next: string | null = beyond ? `${beyond.host}:${beyond.segment * regionsPerSegment}` : null;

  const extents: ActivityExtent[] = [];
  const emit = (p: Pending): boolean => {
    if (extents.length >= walk.limit) return false;
    const e = extentOfRegions({ first: p.first, count: p.end - p.first }, regionBytes, sizeBytes);
    extents.push({ offset: e.offset, length: e.length, host: p.host });
    return true;
  };
  let pending: Pending | null = null;
  walk: for (const { host, segment, bits } of reading) {
    const base = segment * regionsPerSegment;
    const skip = from && host === from.host ? Math.max(0, from.region - base) : 0;
    for (let bit = skip; bit < regionsPerSegment; bit++) {
      if (!testBit(bits, bit)) continue;
      const region = base + bit;
      if (pending && pending.host === host && pending.end === region) {
        pending.end++;
        continue;
      }
      if (pending && !emit(pending)) {
        next = `${pending.host}:${pending.first}`;
        pending = null;
        break walk;
      }
      pending = { host, first: region, end: region + 1 };
    }
  }
  if (pending && !emit(pending)) next = `${pending.host}:${pending.first}`;
  return { volume: name, regionBytes, sizeBytes, extents, nextCursor: next };
}
