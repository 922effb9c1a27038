/** `GET /v1/volumes/{name}/map?cells=N`: the volume's dirty map (src/volume_map.ts). */
import { Hono } from "hono";
import { volumeParams } from "../../src/schemas.ts";
import { validate } from "../../src/validate.ts";
import { volumeMapQuery } from "../../src/volume_map.ts";
import type { RouteDeps } from "./route_deps.ts";

export function mapRoutes({ store }: RouteDeps) {
  return new Hono().get(
    "/v1/volumes/:name/map",
    validate("param", volumeParams),
    validate("query", volumeMapQuery),
    async (c) =>
      c.json(await store.volumeMap(c.req.valid("param").name, c.req.valid("query").cells)),
  );
}
