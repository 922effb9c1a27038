/**
 * A volume's dirty record as the NBD server's `trackmirror:dirty` context serves it
 * (host/nbd/block_status.ts): every byte the backup's secondary may lack, the same superset the
 * fork layer's invariant keeps, so a client copying these extents from the primary misses nothing
 * the secondary lacks at the moment of the answer:
 *
 * - the ranges under the volume's range lock: writes in flight (not yet acknowledged by the backup
 *   nor marked) and resync copies;
 * - in `received` mode, the regions the backup received and has not yet hardened, and those of a
 *   failed link not yet marked at the tracker;
 * - the tracker's dirty marks (its log, read for every request up to the end of the range).
 *
 * Local state is read before the tracker: a write that completes in between was either marked at
 * the tracker before it released its lock (so the log read after holds it) or acknowledged by the
 * backup (so the secondary has it). When the tracker does not answer, the request fails: nothing
 * is reported clean that is not known to be. So does a volume whose tracker record cannot be
 * trusted yet: before the previous run's activity marks are promoted to dirty marks (the log lacks
 * them), and while its trust asks for a checksum resync or it is in split brain (the record no
 * longer covers every difference).
 */
import type { Extent } from "../../src/extent.ts";
import { extentOfRegions, mergeExtents } from "../../src/extent.ts";
import type { DirtyExtentSource } from "../nbd/block_status.ts";
import type { HostTracker } from "./ports.ts";

export interface VolumeDirtyDeps {
  volume: string;
  sizeBytes: number;
  regionBytes: number;
  tracker: Pick<HostTracker, "log">;
  /** Ranges held or awaited under the volume's range lock (host/fork/range_lock.ts). */
  lockedRanges(): Extent[];
  /** Regions received and not yet hardened nor marked (BackupLink.unhardenedRegions). */
  unhardenedRegions(): number[];
  /** Why the tracker's record does not cover every difference now; null when it does. */
  refusal?(): string | null;
}

/** The `DirtyExtentSource` of one volume. */
export function volumeDirtyExtents(deps: VolumeDirtyDeps): DirtyExtentSource {
  return {
    async dirtyExtents(offset: number, length: number): Promise<Extent[]> {
      const refusal = deps.refusal?.();
      if (refusal) throw new Error(`No dirty map of volume "${deps.volume}": ${refusal}`);
      const end = offset + length;
      const local: Extent[] = [
        ...deps.lockedRanges(),
        ...deps.unhardenedRegions().map((r) =>
          extentOfRegions({ first: r, count: 1 }, deps.regionBytes, deps.sizeBytes)
        ),
      ];
      const marked: Extent[] = [];
      // The log is in region order: pages past the range's end are not read.
      walk: for await (const page of deps.tracker.log(deps.volume)) {
        for (const e of page.extents) {
          if (e.offset >= end) break walk;
          if (e.offset + e.length > offset) marked.push({ offset: e.offset, length: e.length });
        }
      }
      return mergeExtents([...local, ...marked])
        .filter((e) => e.offset < end && e.offset + e.length > offset);
    },
  };
}
