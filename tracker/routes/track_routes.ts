/** `POST /v1/track`: hosts' tracking commands, answered once committed. */
import {
  apiRoute,
  errorResponses,
  jsonBody,
  jsonResponse,
  newApiApp,
} from "../../src/api_route.ts";
import {
  type TrackRequest,
  trackRequest,
  type TrackResponse,
  trackResponse,
} from "../../src/schemas.ts";
import type { RouteDeps } from "./route_deps.ts";

/**
 * What `POST /v1/track` does with a validated command: the routed handler below and the lean
 * front door (track_fast.ts) both call it, so the two cannot answer differently.
 */
export async function track(
  { store, metrics, clock }: RouteDeps,
  req: TrackRequest,
): Promise<TrackResponse> {
  metrics.count("trackmirror_tracker_track_requests_total", "Tracking commands received");
  const res = await store.mark(req.volume, req.extents, req.time ?? clock.now(), req);
  metrics.count("trackmirror_tracker_regions_marked_total", "Regions marked", res.regionsMarked);
  return res;
}

export function trackRoutes(deps: RouteDeps) {
  const app = newApiApp();
  apiRoute(app, {
    method: "post",
    path: "/v1/track",
    summary: "Mark every region the extents touch dirty (a host's tracking command)",
    tags: ["tracking"],
    request: { body: jsonBody(trackRequest) },
    responses: {
      200: jsonResponse(trackResponse, "Committed"),
      ...errorResponses({
        400: "A bad field, or an extent outside the volume",
        404: "Unknown volume",
        409: "Fenced: another agent instance holds the volume's lease",
        503: "The tracker is closing",
      }),
    },
  }, async (c) => c.json(await track(deps, c.req.valid("json")), 200));
  return app;
}
