/**
 * A volume's dirty map (src/volume_map.ts): its dirty and activity regions folded into N cells.
 *
 * Reads only bitmaps (128 B a segment), never mark records, and at most `mapSegmentsReadMax` of
 * each kind (dirty, activity) a map: 512 × 128 B = 64 KiB, 52 `getMany` calls. Which segments
 * hold anything comes from the summaries (on a shared store, etcd, just re-read by TrackerState),
 * so a clean volume costs no bitmap read. Beyond
 * the bound (a volume dirty over more than 32 GiB at 64 KiB regions), the remaining segments are
 * drawn from their summary alone: every cell a partly dirty segment touches is shown dirty and
 * the map says `exact: false`. A fully dirty segment is exact either way.
 */
import { popcount, regionsPerSegment, testBit } from "../src/dirty_bitmap.ts";
import { cellOfRegion, mapCell, type VolumeMap } from "../src/volume_map.ts";
import { readActivitySegments } from "./activity_state.ts";
import { dirtyKey } from "./kv_layout.ts";
import type { SegmentCache } from "./segment_cache.ts";
import type { TrackerStore } from "./store/tracker_store.ts";
import type { VolumeState } from "./volume_state.ts";

/** Most segment bitmaps of each kind one map reads from the store. */
export const mapSegmentsReadMax = 512;
/** Dirty bitmaps per `kv.getMany` (Deno KV reads at most 10 keys at once). */
const getManyBitsMax = 10;

/** What the façade hands the reader: a snapshot of the volume's summaries. */
export interface MapSnapshot {
  /** Dirty segment → its dirty region count. */
  dirty: ReadonlyMap<number, number>;
  /** [host, segment, activity region count] of every host's active segments. */
  activity: ReadonlyArray<readonly [string, number, number]>;
  dirtyRegions: number;
  activityRegions: number;
}

/** Cell states while the map is drawn (a cell starts clean, 0); dirty wins over activity. */
const active = 1, dirty = 2;

/** Builds the map of `v` in `cells` cells (1 ≤ cells; more than regionCount is cut to it). */
export async function readVolumeMap(
  kv: TrackerStore,
  cache: SegmentCache,
  v: VolumeState,
  snapshot: MapSnapshot,
  cellsAsked: number,
): Promise<VolumeMap> {
  const { name, sizeBytes, regionBytes } = v.record;
  const regionCount = v.regionCount;
  const cells = Math.max(1, Math.min(cellsAsked, regionCount));
  const state = new Uint8Array(cells);
  let exact = true;
  const paintRegion = (region: number, to: number) => {
    const c = cellOfRegion(region, regionCount, cells);
    if (state[c] < to) state[c] = to;
  };
  /** Paints every cell the segment's regions touch (used beyond the read bound). */
  const paintSegment = (segment: number, count: number, to: number) => {
    const first = segment * regionsPerSegment;
    const end = Math.min(first + regionsPerSegment, regionCount);
    if (count < end - first) exact = false;
    const last = cellOfRegion(end - 1, regionCount, cells);
    for (let c = cellOfRegion(first, regionCount, cells); c <= last; c++) {
      if (state[c] < to) state[c] = to;
    }
  };
  const paintBits = (segment: number, bits: Uint8Array, to: number) => {
    const base = segment * regionsPerSegment;
    for (let bit = 0; bit < regionsPerSegment && base + bit < regionCount; bit++) {
      if (testBit(bits, bit)) paintRegion(base + bit, to);
    }
  };

  const dirtySegments = [...snapshot.dirty.keys()].sort((a, b) => a - b);
  const reading = dirtySegments.slice(0, mapSegmentsReadMax);
  for (const s of dirtySegments.slice(mapSegmentsReadMax)) {
    paintSegment(s, snapshot.dirty.get(s)!, dirty);
  }
  const bits = await dirtyBits(kv, cache, name, reading);
  reading.forEach((s, i) => {
    const b = bits[i];
    // Cleared since the snapshot: nothing to paint. A bitmap read is the truth for its segment.
    if (b !== null && popcount(b) > 0) paintBits(s, b, dirty);
  });

  const activeReading = snapshot.activity.slice(0, mapSegmentsReadMax);
  for (const [, s, count] of snapshot.activity.slice(mapSegmentsReadMax)) {
    paintSegment(s, count, active);
  }
  const activeBits = await readActivitySegments(
    kv,
    name,
    activeReading.map(([host, s]) => [host, s] as const),
  );
  activeReading.forEach(([, s], i) => {
    const b = activeBits[i];
    if (b !== null) paintBits(s, b, active);
  });

  let map = "";
  let dirtyCells = 0;
  let activityCells = 0;
  for (const s of state) {
    if (s === dirty) dirtyCells++;
    if (s === active) activityCells++;
    map += s === dirty ? mapCell.dirty : s === active ? mapCell.activity : mapCell.clean;
  }
  return {
    volume: name,
    sizeBytes,
    regionBytes,
    regionCount,
    cells,
    regionsPerCell: regionCount / cells,
    dirtyRegions: snapshot.dirtyRegions,
    activityRegions: snapshot.activityRegions,
    dirtyCells,
    activityCells,
    exact,
    map,
  };
}

/** The dirty bitmaps of `segments` (null where clean): cached ones first, the rest from the store. */
async function dirtyBits(
  kv: TrackerStore,
  cache: SegmentCache,
  name: string,
  segments: readonly number[],
): Promise<Array<Uint8Array | null>> {
  const out: Array<Uint8Array | null | undefined> = segments.map((s) => {
    const hit = cache.get(name, s);
    return hit === undefined ? undefined : hit?.bits ?? null;
  });
  const missing = segments.filter((_, i) => out[i] === undefined);
  const reads: Promise<Array<Uint8Array | null>>[] = [];
  for (let i = 0; i < missing.length; i += getManyBitsMax) {
    const group = missing.slice(i, i + getManyBitsMax);
    reads.push(
      kv.getMany<Uint8Array[]>(group.map((s) => dirtyKey(name, s))).then((entries) =>
        entries.map((e) => e.value)
      ),
    );
  }
  const read = (await Promise.all(reads)).flat();
  let j = 0;
  return out.map((b) => b === undefined ? read[j++] : b);
}
