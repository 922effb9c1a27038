/** Hosts' activity marks: record (`POST /v1/activity`), retire, promote and page. */
import { Hono } from "hono";
import {
  activityPromoteRequest,
  activityQuery,
  activityRequest,
  activityRetireRequest,
  volumeParams,
} from "../../src/schemas.ts";
import { validate } from "../../src/validate.ts";
import type { RouteDeps } from "./route_deps.ts";

export function activityRoutes({ store, metrics, clock }: RouteDeps) {
  return new Hono()
    .post("/v1/activity", validate("json", activityRequest), async (c) => {
      const req = c.req.valid("json");
      metrics.count("trackmirror_tracker_activity_requests_total", "Activity commands received");
      const res = await store.recordActivity(req.volume, req.host, req.extents, req);
      metrics.count(
        "trackmirror_tracker_activity_regions_new_total",
        "Activity regions added",
        res.regionsNew,
      );
      return c.json(res);
    })
    .post(
      "/v1/volumes/:name/activity/retire",
      validate("param", volumeParams),
      validate("json", activityRetireRequest),
      async (c) => {
        const req = c.req.valid("json");
        const res = await store.retireActivity(
          c.req.valid("param").name,
          req.host,
          req.extents,
          req,
        );
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
      validate("param", volumeParams),
      validate("json", activityPromoteRequest),
      async (c) => {
        const req = c.req.valid("json");
        const res = await store.promoteActivity(c.req.valid("param").name, req.host, clock.now());
        metrics.count(
          "trackmirror_tracker_activity_regions_promoted_total",
          "Activity regions promoted to dirty",
          res.regionsPromoted,
        );
        return c.json(res);
      },
    )
    .get(
      "/v1/volumes/:name/activity",
      validate("param", volumeParams),
      validate("query", activityQuery),
      async (c) =>
        c.json(await store.activityPage(c.req.valid("param").name, c.req.valid("query"))),
    );
}
