/**
 * The tracker's HTTP app (the response module of the seed texts): one sub-app per resource —
 * tracking commands, volumes (registration, info, list, the paged log, clearing) and hosts'
 * activity marks — joined with `app.route` behind the shared basics and a body limit. Input is
 * validated at the edge; everything that changes state goes through the state façade's group
 * committer and is answered after its commit. Assembly (state, metrics, close) is in service.ts.
 */
import { bodyLimit } from "hono/body-limit";
import { newApiApp } from "../src/api_route.ts";
import { tooLarge } from "../src/errors.ts";
import { applyServiceBasics } from "../src/service.ts";
import { activityRoutes } from "./routes/activity_routes.ts";
import { dashboardRoutes } from "./routes/dashboard_routes.ts";
import { eventRoutes } from "./routes/event_routes.ts";
import { mapRoutes } from "./routes/map_routes.ts";
import { type OverviewOptions, overviewRoutes } from "./routes/overview_routes.ts";
import type { RouteDeps } from "./routes/route_deps.ts";
import { statusRoutes } from "./routes/status_routes.ts";
import { trackFast } from "./routes/track_fast.ts";
import { trackRoutes } from "./routes/track_routes.ts";
import { volumeRoutes } from "./routes/volume_routes.ts";

/** Largest request body accepted (a full tracking command of 4096 extents is ~200 KiB). */
export const requestBodyBytesMax = 1024 * 1024;

/**
 * The tracker's routes over `deps`; `token`, when set, guards every route but /healthz and the
 * dashboard's files (and is what the overview sends to host agents and backups). `closing` ends
 * open overview streams.
 */
export function buildTrackerApp(deps: RouteDeps, token?: string, closing?: AbortSignal) {
  const overview: OverviewOptions = { token, closing };
  const app = newApiApp();
  // Before the token check: the page's files hold no data, and the page asks for the token.
  app.route("/", dashboardRoutes());
  applyServiceBasics(app, "tracker", {
    token,
    metrics: deps.metrics,
    description: "Tracks which regions of each volume are dirty (not yet at the backup): hosts " +
      "mark them, reconstruct reads the log and clears what it copied; serves the dashboard.",
  });
  app.use(
    "/v1/*",
    bodyLimit({
      maxSize: requestBodyBytesMax,
      onError: () => {
        throw tooLarge(`Request body exceeds ${requestBodyBytesMax} bytes`);
      },
    }),
  );
  const routed = app
    .route("/", trackRoutes(deps))
    .route("/", volumeRoutes(deps))
    .route("/", activityRoutes(deps))
    .route("/", statusRoutes(deps))
    .route("/", mapRoutes(deps))
    .route("/", overviewRoutes(deps, overview))
    .route("/", eventRoutes());
  // Tracking commands take a lean path ahead of the router; whatever it declines (every bad or
  // unusual request) goes through the routes above. `app.request` calls `fetch`, so in-process
  // tests see the same front door as the server.
  const routerFetch = routed.fetch;
  const fast = trackFast(deps, {
    token,
    bodyBytesMax: requestBodyBytesMax,
    routed: (req) => routerFetch(req),
  });
  routed.fetch = (req, env, ctx) => fast(req) ?? routerFetch(req, env, ctx);
  return routed;
}

/** The tracker's Hono app, typed by its routes (for `hc`). */
export type TrackerApp = ReturnType<typeof buildTrackerApp>;
