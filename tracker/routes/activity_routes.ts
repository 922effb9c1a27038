/** Hosts' activity marks: record (`POST /v1/activity`), retire, promote and page. */
import {
  apiRoute,
  errorResponses,
  jsonBody,
  jsonResponse,
  newApiApp,
} from "../../src/api_route.ts";
import {
  activityPage,
  activityPromoteRequest,
  activityPromoteResponse,
  activityQuery,
  activityRequest,
  activityResponse,
  activityRetireRequest,
  activityRetireResponse,
  volumeParams,
} from "../../src/schemas.ts";
import type { RouteDeps } from "./route_deps.ts";

const tags = ["activity"];
const changeErrors = errorResponses({
  400: "A bad field, or an extent outside the volume",
  404: "Unknown volume",
  409: "Fenced: another agent instance holds the volume's lease",
  503: "The tracker is closing",
});

export function activityRoutes({ store, metrics, clock }: RouteDeps) {
  const app = newApiApp();
  apiRoute(app, {
    method: "post",
    path: "/v1/activity",
    summary: "Record a host's activity marks (the predictive record) for the extents' regions",
    tags,
    request: { body: jsonBody(activityRequest) },
    responses: { 200: jsonResponse(activityResponse, "Recorded"), ...changeErrors },
  }, async (c) => {
    const req = c.req.valid("json");
    metrics.count("trackmirror_tracker_activity_requests_total", "Activity commands received");
    const res = await store.recordActivity(req.volume, req.host, req.extents, req);
    metrics.count(
      "trackmirror_tracker_activity_regions_new_total",
      "Activity regions added",
      res.regionsNew,
    );
    return c.json(res, 200);
  });
  apiRoute(app, {
    method: "post",
    path: "/v1/volumes/{name}/activity/retire",
    summary: "Clear a host's activity marks of the extents' regions",
    tags,
    request: { params: volumeParams, body: jsonBody(activityRetireRequest) },
    responses: { 200: jsonResponse(activityRetireResponse, "Retired"), ...changeErrors },
  }, async (c) => {
    const req = c.req.valid("json");
    const res = await store.retireActivity(c.req.valid("param").name, req.host, req.extents, req);
    metrics.count(
      "trackmirror_tracker_activity_regions_retired_total",
      "Activity regions retired",
      res.regionsRetired,
    );
    return c.json(res, 200);
  });
  apiRoute(app, {
    method: "post",
    path: "/v1/volumes/{name}/activity/promote",
    summary: "Turn all of a host's activity marks into dirty marks (reconstruct, for a dead host)",
    tags,
    request: { params: volumeParams, body: jsonBody(activityPromoteRequest) },
    responses: { 200: jsonResponse(activityPromoteResponse, "Promoted"), ...changeErrors },
  }, async (c) => {
    const req = c.req.valid("json");
    const res = await store.promoteActivity(c.req.valid("param").name, req.host, clock.now());
    metrics.count(
      "trackmirror_tracker_activity_regions_promoted_total",
      "Activity regions promoted to dirty",
      res.regionsPromoted,
    );
    return c.json(res, 200);
  });
  apiRoute(
    app,
    {
      method: "get",
      path: "/v1/volumes/{name}/activity",
      summary: "Activity marks of one host or every host, merged into extents, paged",
      tags,
      request: { params: volumeParams, query: activityQuery },
      responses: {
        200: jsonResponse(activityPage, "One page; `nextCursor` is null on the last"),
        ...errorResponses({ 400: "A bad query value or cursor", 404: "Unknown volume" }),
      },
    },
    async (c) =>
      c.json(await store.activityPage(c.req.valid("param").name, c.req.valid("query")), 200),
  );
  return app;
}
