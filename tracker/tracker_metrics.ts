/**
 * The tracker's per-volume families, read at scrape time from the volume summaries the store
 * already keeps (`list()`: the same numbers `GET /v1/volumes` answers). Nothing is counted on the
 * write path for them.
 */
import type { Clock } from "../src/clock.ts";
import type { Metrics } from "../src/metrics.ts";
import type { VolumeInfo } from "../src/schemas.ts";

/** What the families read of the store. */
export interface VolumeLister {
  list(): Promise<VolumeInfo[]>;
}

/** Registers the per-volume families of `store` on `metrics`. */
export function registerTrackerVolumeMetrics(
  metrics: Metrics,
  store: VolumeLister,
  clock: Clock,
): void {
  // prom-client collects every family of a scrape at once: one read of the volumes serves them
  // all. A failed read (the store closing) leaves the families empty, not the scrape failed.
  let scrape: Promise<VolumeInfo[]> | undefined;
  const volumes = () => {
    scrape ??= store.list().catch((err) => {
      console.warn(`tracker: volume metrics not read: ${(err as Error).message}`);
      return [];
    }).finally(() => queueMicrotask(() => scrape = undefined));
    return scrape;
  };
  const perVolume = (name: string, help: string, value: (v: VolumeInfo) => number | null) =>
    metrics.gauge(name, help, ["volume"], async (set) => {
      for (const v of await volumes()) {
        const x = value(v);
        if (x !== null) set({ volume: v.name }, x);
      }
    });
  perVolume(
    "trackmirror_tracker_volume_dirty_regions",
    "Regions of the volume marked dirty (the secondary may lack them)",
    (v) => v.dirtyRegions,
  );
  perVolume(
    "trackmirror_tracker_volume_dirty_bytes",
    "Bytes of the volume's dirty regions (the last region counted only up to the volume's end)",
    (v) => v.dirtyBytes,
  );
  perVolume(
    "trackmirror_tracker_volume_oldest_mark_age_seconds",
    "How long the oldest dirty mark of the volume has been held (absent when none is)",
    (v) => v.oldestMarkAt === null ? null : Math.max(0, (clock.now() - v.oldestMarkAt) / 1000),
  );
  perVolume(
    "trackmirror_tracker_volume_activity_regions",
    "Regions of the volume holding activity marks (writes the backup may not have; every host)",
    (v) => v.activityRegions ?? 0,
  );
  perVolume(
    "trackmirror_tracker_volume_size_bytes",
    "Size of the volume as registered",
    (v) => v.sizeBytes,
  );
}
