/** `/v1/volumes...`: registration, info, list, the paged tracking log and clearing. */
import { Hono } from "hono";
import { clearRequest, logQuery, volumeParams, volumeRegistration } from "../../src/schemas.ts";
import { validate } from "../../src/validate.ts";
import type { RouteDeps } from "./route_deps.ts";

export function volumeRoutes({ store, metrics }: RouteDeps) {
  return new Hono()
    .put(
      "/v1/volumes/:name",
      validate("param", volumeParams),
      validate("json", volumeRegistration),
      async (c) => c.json(await store.register(c.req.valid("param").name, c.req.valid("json"))),
    )
    .get("/v1/volumes", async (c) => c.json({ volumes: await store.list() }))
    .get(
      "/v1/volumes/:name",
      validate("param", volumeParams),
      async (c) => c.json(await store.info(c.req.valid("param").name)),
    )
    .get(
      "/v1/volumes/:name/log",
      validate("param", volumeParams),
      validate("query", logQuery),
      async (c) => c.json(await store.logPage(c.req.valid("param").name, c.req.valid("query"))),
    )
    .post(
      "/v1/volumes/:name/clear",
      validate("param", volumeParams),
      validate("json", clearRequest),
      async (c) => {
        const req = c.req.valid("json");
        const res = await store.clear(c.req.valid("param").name, req.token, req.extents, req);
        metrics.count(
          "trackmirror_tracker_regions_cleared_total",
          "Regions cleared",
          res.regionsCleared,
        );
        return c.json(res);
      },
    );
}
