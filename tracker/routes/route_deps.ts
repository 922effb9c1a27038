/** What every tracker sub-app is built from; its own file so sub-apps and app.ts share it. */
import type { Clock } from "../../src/clock.ts";
import type { Metrics } from "../../src/metrics.ts";
import type { StoreProbe } from "../store/store_probe.ts";
import type { TrackerState } from "../tracker_state.ts";
import type { VolumesReader } from "./volumes_seen.ts";

export interface RouteDeps {
  store: TrackerState;
  metrics: Metrics;
  clock: Clock;
  /** Whether the store answers, probed in the background; absent when no probe runs. */
  storeProbe?: StoreProbe;
  /** The volumes the probe last read (with `storeProbe`). */
  volumesSeen?: VolumesReader;
}
