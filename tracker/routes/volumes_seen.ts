/**
 * The tracker's volumes as last read from its store, for summaries that must not wait on the
 * store (`GET /v1/status`): the store probe refreshes them after each check that found the store
 * answering (../store/store_probe.ts `afterOk`), so they are at most one probe interval old
 * while the store answers, and stay what was last read while it does not.
 */
import type { Clock } from "../../src/clock.ts";
import type { VolumeInfo } from "../../src/schemas.ts";
import type { TrackerState } from "../tracker_state.ts";

/** The volumes last read, and when (the tracker's clock, epoch ms). */
export interface VolumesSeen {
  volumes: VolumeInfo[];
  at: number;
}

/** See the file comment; one listing at a time. */
export class VolumesReader {
  #last: VolumesSeen | null = null;
  #listing: Promise<VolumesSeen> | null = null;

  constructor(private readonly store: TrackerState, private readonly clock: Clock) {}

  /** The volumes last read (null when never). */
  get last(): VolumesSeen | null {
    return this.#last;
  }

  /** Reads the volumes now (joining a listing under way); a failure keeps `last`. */
  refresh(): Promise<VolumesSeen> {
    this.#listing ??= (async () => {
      try {
        const at = this.clock.now();
        const volumes = await this.store.list();
        this.#last = { volumes, at };
        return this.#last;
      } finally {
        this.#listing = null;
      }
    })();
    return this.#listing;
  }
}
