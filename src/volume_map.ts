/**
 * The dirty map of a volume (`GET /v1/volumes/{name}/map?cells=N`, issue 11 item 5): the volume
 * cut into N cells of whole regions, each cell `D` when a region in it is dirty at the tracker,
 * `A` when none is dirty but a host holds an activity mark on one (the predictive record), `.`
 * when clean. The dashboard draws it as a strip; one character a cell keeps 4096 cells at 4 KiB.
 *
 * Cell of region r: floor(r × cells / regionCount), so every cell holds ⌊regionCount / cells⌋ or
 * one more regions, and with cells ≥ regionCount each cell is exactly one region.
 */
import { z } from "zod";

/** Most cells a map is cut into. */
export const mapCellsMax = 4096;
/** Cells when the query names none. */
export const mapCellsDefault = 256;

/** Cell states, as the map string spells them. */
export const mapCell = { dirty: "D", activity: "A", clean: "." } as const;

export const volumeMapQuery = z.object({
  cells: z.coerce.number().int().min(1).max(mapCellsMax).default(mapCellsDefault),
});

export const volumeMap = z.object({
  volume: z.string(),
  sizeBytes: z.number(),
  regionBytes: z.number(),
  regionCount: z.number(),
  /** Cells in `map`: the asked number, at most regionCount. */
  cells: z.number(),
  /** Regions a cell covers on average (regionCount / cells). */
  regionsPerCell: z.number(),
  dirtyRegions: z.number(),
  activityRegions: z.number(),
  dirtyCells: z.number(),
  activityCells: z.number(),
  /**
   * False when the volume held more dirty or active segments than one map reads
   * (tracker/map_reader.ts): those segments' cells are shown dirty (or active) whole.
   */
  exact: z.boolean(),
  /** One character a cell: `D` dirty, `A` activity only, `.` clean. */
  map: z.string(),
});
export type VolumeMap = z.infer<typeof volumeMap>;

/** The cell of `region` when `regionCount` regions are cut into `cells` cells. */
export function cellOfRegion(region: number, regionCount: number, cells: number): number {
  return Math.floor(region * cells / regionCount);
}
