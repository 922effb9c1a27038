/**
 * Assembles a tracker: the state façade over the KV, its metrics and the HTTP app, and how to
 * stop it. Apart from app.ts so the routes stay a plain description of the HTTP surface.
 */
import type { Clock } from "../src/clock.ts";
import { Metrics } from "../src/metrics.ts";
import { buildTrackerApp, type TrackerApp } from "./app.ts";
import { registerTrackerVolumeMetrics } from "./tracker_metrics.ts";
import { StoreProbe, type StoreProbeOptions } from "./store/store_probe.ts";
import type { StoreTraits, TrackerStore } from "./store/tracker_store.ts";
import { TrackerState } from "./tracker_state.ts";
import { VolumesReader } from "./routes/volumes_seen.ts";

/** What the tracker is built from. */
export interface TrackerAppOptions {
  /** The store: a Deno KV this tracker solely owns, or a shared one (etcd; `traits`). */
  kv: TrackerStore;
  /** What the store is (default: Deno KV, written by this tracker only). */
  traits?: StoreTraits;
  clock: Clock;
  /**
   * When set, every route but /healthz and the dashboard's files needs
   * `Authorization: Bearer <token>`.
   */
  token?: string;
  /** Bound of the in-memory segment cache (segments). */
  segmentCacheMax?: number;
  /** Bound of the tracking command queue (commands). */
  queueOpsMax?: number;
  /**
   * When set, the store is probed in the background (from now until `close`) and `/v1/status`
   * says whether it answers (tracker/store/store_probe.ts); main.ts always sets it.
   */
  storeProbe?: Omit<StoreProbeOptions, "clock" | "afterOk">;
}

/** The tracker app and what its owner needs to run and stop it. */
export interface TrackerService {
  app: TrackerApp;
  store: TrackerState;
  metrics: Metrics;
  /** The store's background probe, when `storeProbe` was given. */
  storeProbe?: StoreProbe;
  /** Ends open streams (the overview's), so a graceful shutdown does not wait for them. */
  endStreams(): void;
  /**
   * Ends open streams, refuses new commands and waits until the queued ones are committed; does
   * not close the KV.
   */
  close(): Promise<void>;
}

/** Builds the tracker over `kv`; see TrackerService. */
export function createTrackerApp(opts: TrackerAppOptions): TrackerService {
  const metrics = new Metrics();
  const store = new TrackerState(opts.kv, {
    clock: opts.clock,
    metrics,
    segmentCacheMax: opts.segmentCacheMax,
    queueOpsMax: opts.queueOpsMax,
    traits: opts.traits,
  });
  registerTrackerVolumeMetrics(metrics, store, opts.clock);
  const closing = new AbortController();
  const volumesSeen = new VolumesReader(store, opts.clock);
  const storeProbe = opts.storeProbe
    ? new StoreProbe({
      ...opts.storeProbe,
      clock: opts.clock,
      afterOk: () => volumesSeen.refresh(),
    })
    : undefined;
  storeProbe?.start();
  const app = buildTrackerApp(
    { store, metrics, clock: opts.clock, storeProbe, volumesSeen },
    opts.token,
    closing.signal,
  );
  return {
    app,
    store,
    metrics,
    storeProbe,
    endStreams: () => closing.abort(),
    close: () => {
      closing.abort();
      storeProbe?.stop();
      return store.close();
    },
  };
}
