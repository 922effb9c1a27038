/**
 * Activity marks in memory: per volume, each host's count of activity regions by segment (the
 * counterpart of the dirty summary), loaded from KV on first need and then kept current by every
 * commit; and the reads of activity bitmap segments (128 B each, key layout in kv_layout.ts).
 *
 * Memory: ~80 B per (host, segment) holding activity, at most activityHostsMax hosts a volume.
 */
import { popcount, segmentBytes } from "../src/dirty_bitmap.ts";
import { activityKey, activityPrefix } from "./kv_layout.ts";
import type { ReadSet } from "./store/read_set.ts";
import type { TrackerStore } from "./store/tracker_store.ts";

/** Most hosts that may hold activity marks on one volume at once (a further host gets 409). */
export const activityHostsMax = 64;
/** Activity segments per `kv.getMany` (Deno KV reads at most 10 keys at once). */
export const getManyActivityMax = 10;

/** One host's activity on a volume. */
export interface HostActivity {
  /** Activity regions of the host on the volume. */
  total: number;
  /** Segment → activity regions in it; segments without any are absent. */
  segments: Map<number, number>;
}

/** A volume's activity: host → its activity; hosts without any are absent. */
export type ActivitySummary = Map<string, HostActivity>;

/** Activity regions the summary knows in one segment of a host (0 when none). */
export function activityCount(summary: ActivitySummary, host: string, segment: number): number {
  return summary.get(host)?.segments.get(segment) ?? 0;
}

/** Applies a committed activity segment's region count to the summary. */
export function updateActivity(
  summary: ActivitySummary,
  host: string,
  segment: number,
  count: number,
): void {
  let h = summary.get(host);
  const before = h?.segments.get(segment) ?? 0;
  if (count === before) return;
  if (!h) summary.set(host, h = { total: 0, segments: new Map() });
  h.total += count - before;
  if (count > 0) h.segments.set(segment, count);
  else h.segments.delete(segment);
  if (h.total === 0) summary.delete(host);
}

/** The API's view: total activity regions and the count of each host, by host name. */
export function activityTotals(
  summary: ActivitySummary,
): { activityRegions: number; activityByHost: Record<string, number> } {
  let activityRegions = 0;
  const activityByHost: Record<string, number> = {};
  for (const host of [...summary.keys()].sort()) {
    const { total } = summary.get(host)!;
    activityByHost[host] = total;
    activityRegions += total;
  }
  return { activityRegions, activityByHost };
}

/** Checks a stored activity segment; throws naming it when it is not a non-empty bitmap. */
export function checkActivityBits(bits: unknown, what: string): Uint8Array {
  if (!(bits instanceof Uint8Array) || bits.length !== segmentBytes || popcount(bits) === 0) {
    const shown = bits instanceof Uint8Array ? `${bits.length} bytes` : typeof bits;
    throw new Error(
      `Activity segment ${what} is corrupt: ${shown} (want ${segmentBytes} bytes, some bit set)`,
    );
  }
  return bits;
}

/**
 * Builds the volume's activity summary from KV. Call only where no commit can interleave (inside
 * the committer), so the listing sees one state.
 */
export async function loadActivity(kv: TrackerStore, name: string): Promise<ActivitySummary> {
  const summary: ActivitySummary = new Map();
  for await (const e of kv.list<Uint8Array>({ prefix: activityPrefix(name) })) {
    const host = e.key[2] as string;
    const segment = e.key[3] as number;
    const bits = checkActivityBits(e.value, `${name}/${host}/${segment}`);
    updateActivity(summary, host, segment, popcount(bits));
  }
  return summary;
}

/** Reads activity segments `[host, segment]` of a volume from KV; null where a segment is clean. */
export async function readActivitySegments(
  kv: TrackerStore,
  name: string,
  wanted: ReadonlyArray<readonly [string, number]>,
  seen?: ReadSet,
): Promise<Array<Uint8Array | null>> {
  const reads: Promise<Array<Uint8Array | null>>[] = [];
  for (let i = 0; i < wanted.length; i += getManyActivityMax) {
    const group = wanted.slice(i, i + getManyActivityMax);
    reads.push(
      kv.getMany<Uint8Array[]>(group.map(([host, s]) => activityKey(name, host, s))).then((
        entries,
      ) =>
        entries.map((e, j) => {
          seen?.record(e.key, e.versionstamp);
          return e.value === null
            ? null
            : checkActivityBits(e.value, `${name}/${group[j][0]}/${group[j][1]}`);
        })
      ),
    );
  }
  return (await Promise.all(reads)).flat();
}

/** Cache scope of a host's activity segments of a volume (see segment_cache.ts). */
export function activityScope(name: string, host: string): string {
  return `${name}/${host}`;
}
