/**
 * Which journal segments still hold bytes the applier has not released, and the deletion of those
 * that no longer do. A segment is deleted only when it is closed (no longer appended to) and every
 * byte in it was applied and synced to the secondaries. Deletions run one at a time, oldest first;
 * replay copes with them reaching the disk out of order (see `replayStart`).
 */
import assert from "node:assert/strict";
import type { Metrics } from "../src/metrics.ts";
import { segmentPath } from "./segment_files.ts";
import { logLine } from "../src/events.ts";

interface SegmentState {
  /** Bytes written to the segment and not yet released by the applier. */
  unreleased: number;
  closed: boolean;
}

/** Unreleased bytes per journal segment, and deletion of segments that have none left. */
export class SegmentLedger {
  /** In id order: segments are only ever added with the next id. */
  #segments = new Map<number, SegmentState>();
  #reclaimer: Promise<void> = Promise.resolve();

  constructor(private readonly dir: string, private readonly metrics?: Metrics) {}

  /** Starts tracking segment `id`, the new active one. */
  begin(id: number): void {
    const last = [...this.#segments.keys()].at(-1);
    assert.ok(last === undefined || id === last + 1, `Segment ${id} does not follow ${last}`);
    this.#segments.set(id, { unreleased: 0, closed: false });
  }

  /** Counts `bytes` made durable in segment `id`. */
  written(id: number, bytes: number): void {
    this.#get(id).unreleased += bytes;
  }

  /** Counts `bytes` of segment `id` as applied and synced. */
  released(id: number, bytes: number): void {
    const seg = this.#get(id);
    assert.ok(seg.unreleased >= bytes, `Release of ${bytes} bytes of segment ${id} not written`);
    seg.unreleased -= bytes;
  }

  /** Marks segment `id` as no longer appended to. */
  close(id: number): void {
    this.#get(id).closed = true;
  }

  /** Deletes closed, fully released segments, oldest first; resolves when done. */
  reclaim(): Promise<void> {
    this.#reclaimer = this.#reclaimer.then(async () => {
      for (const [id, seg] of this.#segments) {
        if (!seg.closed || seg.unreleased > 0) break;
        try {
          await Deno.remove(segmentPath(this.dir, id));
        } catch (err) {
          if (!(err instanceof Deno.errors.NotFound)) {
            logLine(
              "backup",
              "error",
              `Journal segment ${id} could not be removed: ${(err as Error).message}`,
            );
            break;
          }
        }
        this.#segments.delete(id);
        this.metrics?.count(
          "trackmirror_backup_journal_segments_reclaimed_total",
          "Journal segments deleted after every record in them was applied",
        );
      }
    });
    return this.#reclaimer;
  }

  #get(id: number): SegmentState {
    const seg = this.#segments.get(id);
    assert.ok(seg, `Segment ${id} is not tracked`);
    return seg;
  }
}
