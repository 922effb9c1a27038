/**
 * Reads committed dirty segments from KV. Shared by the log reader and the committer's loader, so
 * it stands below both and imports neither.
 */
import { dirtyKey, markedKey } from "./kv_layout.ts";
import type { ReadSet } from "./store/read_set.ts";
import type { TrackerStore } from "./store/tracker_store.ts";
import type { SegmentCache } from "./segment_cache.ts";
import type { StoredSegment } from "./segment_state.ts";

/** Segments per `kv.getMany` (Deno KV reads at most 10 keys at once; two keys a segment). */
export const getManySegmentsMax = 5;

/**
 * Reads segments from KV, each bitmap with its mark record in the same snapshot (one getMany),
 * so the pair always matches even while a commit is writing elsewhere.
 */
export async function readSegments(
  kv: TrackerStore,
  name: string,
  segments: readonly number[],
  reads?: ReadSet,
): Promise<Map<number, StoredSegment | null>> {
  const keys = segments.flatMap((s) => [dirtyKey(name, s), markedKey(name, s)]);
  const entries = await kv.getMany<Uint8Array[]>(keys);
  for (const e of entries) reads?.record(e.key, e.versionstamp);
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

/**
 * Committed state of `segments`: cached ones from the cache, the rest read from KV in groups.
 * With `fillCache` (the committer's loader, the only writer) what was read is cached; readers pass
 * false, because a read racing a commit could otherwise cache a state the commit just replaced.
 * `reads` (a shared store's batch) records the versionstamps of what was read from the store.
 */
export async function storedSegments(
  kv: TrackerStore,
  cache: SegmentCache,
  name: string,
  segments: readonly number[],
  fillCache: boolean,
  reads?: ReadSet,
): Promise<Map<number, StoredSegment | null>> {
  const out = new Map<number, StoredSegment | null>();
  const missing: number[] = [];
  for (const s of segments) {
    const hit = cache.get(name, s);
    if (hit === undefined) missing.push(s);
    else out.set(s, hit);
  }
  const groups: number[][] = [];
  for (let i = 0; i < missing.length; i += getManySegmentsMax) {
    groups.push(missing.slice(i, i + getManySegmentsMax));
  }
  for (const found of await Promise.all(groups.map((g) => readSegments(kv, name, g, reads)))) {
    for (const [s, stored] of found) {
      out.set(s, stored);
      if (fillCache) cache.set(name, s, stored);
    }
  }
  return out;
}
