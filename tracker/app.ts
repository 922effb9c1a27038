/**
 * The tracker's HTTP routes (the response module of the seed texts): tracking commands, volume
 * registration, the paged tracking log and clearing, and hosts' activity marks (record, retire,
 * promote, page). Input is validated at the edge; everything
 * that changes state goes through the store's group committer and is answered after its commit.
 */
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { Clock } from "../src/clock.ts";
import { badRequest, tooLarge } from "../src/errors.ts";
import { Metrics } from "../src/metrics.ts";
import {
  activityPromoteRequest,
  activityQuery,
  activityRequest,
  activityRetireRequest,
  checkName,
  clearRequest,
  logQuery,
  trackRequest,
  volumeRegistration,
} from "../src/schemas.ts";
import { applyServiceBasics } from "../src/service.ts";
import { validate } from "../src/validate.ts";
import { TrackerState } from "./tracker_state.ts";

/** Largest request body accepted (a full tracking command of 4096 extents is ~200 KiB). */
export const requestBodyBytesMax = 1024 * 1024;

/** What the tracker app is built from. */
export interface TrackerAppOptions {
  /** The KV this tracker solely owns. */
  kv: Deno.Kv;
  clock: Clock;
  /** When set, every route but /healthz needs `Authorization: Bearer <token>`. */
  token?: string;
  /** Bound of the in-memory segment cache (segments). */
  segmentCacheMax?: number;
  /** Bound of the tracking command queue (commands). */
  queueOpsMax?: number;
}

/** The tracker app and what its owner needs to run and stop it. */
export interface TrackerService {
  app: TrackerApp;
  store: TrackerState;
  metrics: Metrics;
  /** Refuses new commands and waits until the queued ones are committed; does not close the KV. */
  close(): Promise<void>;
}

/** Checks a volume name taken from the path; 400 naming it otherwise. */
function volumeParam(name: string): string {
  try {
    return checkName("Volume", name);
  } catch (err) {
    throw badRequest((err as Error).message);
  }
}

function buildRoutes(store: TrackerState, metrics: Metrics, clock: Clock, token?: string) {
  const app = new Hono();
  applyServiceBasics(app, "tracker", { token, metrics });
  app.use(
    "/v1/*",
    bodyLimit({
      maxSize: requestBodyBytesMax,
      onError: () => {
        throw tooLarge(`Request body exceeds ${requestBodyBytesMax} bytes`);
      },
    }),
  );
  return app
    .post("/v1/track", validate("json", trackRequest), async (c) => {
      const req = c.req.valid("json");
      metrics.count("trackmirror_tracker_track_requests_total", "Tracking commands received");
      const res = await store.mark(req.volume, req.extents, req.time ?? clock.now());
      metrics.count(
        "trackmirror_tracker_regions_marked_total",
        "Regions marked",
        res.regionsMarked,
      );
      return c.json(res);
    })
    .put("/v1/volumes/:name", validate("json", volumeRegistration), async (c) => {
      const name = volumeParam(c.req.param("name"));
      return c.json(await store.register(name, c.req.valid("json")));
    })
    .get("/v1/volumes", async (c) => c.json({ volumes: await store.list() }))
    .get("/v1/volumes/:name", async (c) => {
      return c.json(await store.info(volumeParam(c.req.param("name"))));
    })
    .get("/v1/volumes/:name/log", validate("query", logQuery), async (c) => {
      const name = volumeParam(c.req.param("name"));
      return c.json(await store.logPage(name, c.req.valid("query")));
    })
    .post("/v1/volumes/:name/clear", validate("json", clearRequest), async (c) => {
      const name = volumeParam(c.req.param("name"));
      const req = c.req.valid("json");
      const res = await store.clear(name, req.token, req.extents);
      metrics.count(
        "trackmirror_tracker_regions_cleared_total",
        "Regions cleared",
        res.regionsCleared,
      );
      return c.json(res);
    })
    .post("/v1/activity", validate("json", activityRequest), async (c) => {
      const req = c.req.valid("json");
      metrics.count("trackmirror_tracker_activity_requests_total", "Activity commands received");
      const res = await store.recordActivity(req.volume, req.host, req.extents);
      metrics.count(
        "trackmirror_tracker_activity_regions_new_total",
        "Activity regions added",
        res.regionsNew,
      );
      return c.json(res);
    })
    .post(
      "/v1/volumes/:name/activity/retire",
      validate("json", activityRetireRequest),
      async (c) => {
        const name = volumeParam(c.req.param("name"));
        const req = c.req.valid("json");
        const res = await store.retireActivity(name, req.host, req.extents);
        metrics.count(
          "trackmirror_tracker_activity_regions_retired_total",
          "Activity regions retired",
          res.regionsRetired,
        );
        return c.json(res);
      },
    )
    .post(
      "/v1/volumes/:name/activity/promote",
      validate("json", activityPromoteRequest),
      async (c) => {
        const name = volumeParam(c.req.param("name"));
        const req = c.req.valid("json");
        const res = await store.promoteActivity(name, req.host, clock.now());
        metrics.count(
          "trackmirror_tracker_activity_regions_promoted_total",
          "Activity regions promoted to dirty",
          res.regionsPromoted,
        );
        return c.json(res);
      },
    )
    .get("/v1/volumes/:name/activity", validate("query", activityQuery), async (c) => {
      const name = volumeParam(c.req.param("name"));
      return c.json(await store.activityPage(name, c.req.valid("query")));
    });
}

/** The tracker's Hono app, typed by its routes (for `hc`). */
export type TrackerApp = ReturnType<typeof buildRoutes>;

/** Builds the tracker over `kv`; see TrackerService. */
export function createTrackerApp(opts: TrackerAppOptions): TrackerService {
  const metrics = new Metrics();
  const store = new TrackerState(opts.kv, {
    clock: opts.clock,
    metrics,
    segmentCacheMax: opts.segmentCacheMax,
    queueOpsMax: opts.queueOpsMax,
  });
  const app = buildRoutes(store, metrics, opts.clock, opts.token);
  return { app, store, metrics, close: () => store.close() };
}
