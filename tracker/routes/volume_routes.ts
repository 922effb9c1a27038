/** `/v1/volumes...`: registration, info, list, the paged tracking log and clearing. */
import { z } from "zod";
import {
  apiRoute,
  errorResponses,
  jsonBody,
  jsonResponse,
  newApiApp,
} from "../../src/api_route.ts";
import {
  clearRequest,
  clearResponse,
  logPage,
  logQuery,
  volumeInfo,
  volumeParams,
  volumeRegistration,
} from "../../src/schemas.ts";
import type { RouteDeps } from "./route_deps.ts";

const tags = ["volumes"];
const unknownVolume = { 404: "Unknown volume" };

export function volumeRoutes({ store, metrics }: RouteDeps) {
  const app = newApiApp();
  apiRoute(
    app,
    {
      method: "put",
      path: "/v1/volumes/{name}",
      summary: "Register a volume and its owning host agent (takes or renews the lease)",
      tags,
      request: { params: volumeParams, body: jsonBody(volumeRegistration) },
      responses: {
        200: jsonResponse(volumeInfo, "Registered"),
        ...errorResponses({
          400: "A bad field, or a size or region size other than the registered one",
          409: "Another host or agent instance holds the lease",
        }),
      },
    },
    async (c) => c.json(await store.register(c.req.valid("param").name, c.req.valid("json")), 200),
  );
  apiRoute(app, {
    method: "get",
    path: "/v1/volumes",
    summary: "Every registered volume with its owner, dirty regions and activity",
    tags,
    responses: {
      200: jsonResponse(z.object({ volumes: z.array(volumeInfo) }), "The volumes"),
    },
  }, async (c) => c.json({ volumes: await store.list() }, 200));
  apiRoute(app, {
    method: "get",
    path: "/v1/volumes/{name}",
    summary: "One volume's registration and dirty summary",
    tags,
    request: { params: volumeParams },
    responses: {
      200: jsonResponse(volumeInfo, "The volume"),
      ...errorResponses({ 400: "A bad volume name", ...unknownVolume }),
    },
  }, async (c) => c.json(await store.info(c.req.valid("param").name), 200));
  apiRoute(
    app,
    {
      method: "get",
      path: "/v1/volumes/{name}/log",
      summary: "The tracking log: dirty extents with their first and last mark times, paged",
      tags,
      request: { params: volumeParams, query: logQuery },
      responses: {
        200: jsonResponse(logPage, "One page; `nextCursor` is null on the last"),
        ...errorResponses({ 400: "A bad query value or cursor", ...unknownVolume }),
      },
    },
    async (c) => c.json(await store.logPage(c.req.valid("param").name, c.req.valid("query")), 200),
  );
  apiRoute(app, {
    method: "post",
    path: "/v1/volumes/{name}/clear",
    summary: "Clear regions copied since the log's token (regions marked again stay dirty)",
    tags,
    request: { params: volumeParams, body: jsonBody(clearRequest) },
    responses: {
      200: jsonResponse(clearResponse, "Cleared"),
      ...errorResponses({
        400: "A bad field or token",
        ...unknownVolume,
        409: "Fenced: another agent instance holds the volume's lease",
        503: "The tracker is closing",
      }),
    },
  }, async (c) => {
    const req = c.req.valid("json");
    const res = await store.clear(c.req.valid("param").name, req.token, req.extents, req);
    metrics.count(
      "trackmirror_tracker_regions_cleared_total",
      "Regions cleared",
      res.regionsCleared,
    );
    return c.json(res, 200);
  });
  return app;
}
