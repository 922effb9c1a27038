/** `GET /v1/volumes/{name}/map?cells=N`: the volume's dirty map (src/volume_map.ts). */
import { apiRoute, errorResponses, jsonResponse, newApiApp } from "../../src/api_route.ts";
import { volumeParams } from "../../src/schemas.ts";
import { volumeMap, volumeMapQuery } from "../../src/volume_map.ts";
import type { RouteDeps } from "./route_deps.ts";

export function mapRoutes({ store }: RouteDeps) {
  const app = newApiApp();
  apiRoute(
    app,
    {
      method: "get",
      path: "/v1/volumes/{name}/map",
      summary:
        "The volume cut into N cells: D dirty, A activity only, . clean (the dashboard's map)",
      tags: ["volumes"],
      request: { params: volumeParams, query: volumeMapQuery },
      responses: {
        200: jsonResponse(volumeMap, "The map"),
        ...errorResponses({ 400: "A bad volume name or cells", 404: "Unknown volume" }),
      },
    },
    async (c) =>
      c.json(await store.volumeMap(c.req.valid("param").name, c.req.valid("query").cells), 200),
  );
  return app;
}
