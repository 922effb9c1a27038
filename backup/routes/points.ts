/**
 * `GET /v1/volumes/{name}/points` (issue 10): the committed points in time of a volume's
 * secondary (the last `pointsKeptMax`, oldest first) and its open cycle, if any. The secondary
 * holds the newest point; an open cycle is staged and not yet visible in it.
 */
import {
  apiRoute,
  errorResponses,
  jsonResponse,
  newApiApp,
  openApiPath,
} from "../../src/api_route.ts";
import { notFound } from "../../src/errors.ts";
import { volumeParams } from "../../src/schemas.ts";
import { pointsResponse } from "../backup_schemas.ts";
import type { CycleStages } from "../cycle_stage.ts";
import { backupRoutes } from "../paths.ts";
import type { SecondaryStore } from "../secondary_store.ts";

export function pointsApp(deps: { store: SecondaryStore; stages: CycleStages }) {
  const { store, stages } = deps;
  const app = newApiApp();
  apiRoute(app, {
    method: "get",
    path: openApiPath(backupRoutes.points),
    summary: "The volume's committed points in time (oldest first) and its open resync cycle",
    tags: ["volumes"],
    request: { params: volumeParams },
    responses: {
      200: jsonResponse(pointsResponse, "Points and open cycle"),
      ...errorResponses({ 400: "A bad volume name", 404: "Unknown volume" }),
    },
  }, (c) => {
    const { name } = c.req.valid("param");
    if (store.sizeOf(name) === undefined) {
      throw notFound(`Volume "${name}" has no secondary at this backup`);
    }
    return c.json({
      volume: name,
      points: stages.points(name),
      openCycle: stages.openCycles().find((o) => o.volume === name) ?? null,
    }, 200);
  });
  return app;
}
