/** `POST /v1/track`: hosts' tracking commands, answered once committed. */
import { Hono } from "hono";
import { trackRequest } from "../../src/schemas.ts";
import { validate } from "../../src/validate.ts";
import type { RouteDeps } from "./route_deps.ts";

export function trackRoutes({ store, metrics, clock }: RouteDeps) {
  return new Hono().post("/v1/track", validate("json", trackRequest), async (c) => {
    const req = c.req.valid("json");
    metrics.count("trackmirror_tracker_track_requests_total", "Tracking commands received");
    const res = await store.mark(req.volume, req.extents, req.time ?? clock.now(), req);
    metrics.count("trackmirror_tracker_regions_marked_total", "Regions marked", res.regionsMarked);
    return c.json(res);
  });
}
