/**
 * `GET /v1/status`: the tracker's own summary for `deno task status` and monitors (issue 11) —
 * since when it runs and how many volumes it holds dirty, with ISO 8601 times beside epoch ms.
 * Per-volume detail stays at `GET /v1/volumes`.
 */
import { apiRoute, jsonResponse, newApiApp } from "../../src/api_route.ts";
import { isoTime } from "../../src/iso_time.ts";
import { type TrackerStatus, trackerStatus, type VolumeInfo } from "../../src/schemas.ts";
import type { RouteDeps } from "./route_deps.ts";

/** The summary of `volumes` at `now` (also the tracker's part of `/v1/overview`). */
export function trackerStatusOf(
  volumes: readonly VolumeInfo[],
  startedAt: number,
  now: number,
): TrackerStatus {
  return {
    service: "tracker",
    startedAt,
    startedAtIso: isoTime(startedAt),
    now,
    nowIso: isoTime(now),
    volumes: volumes.length,
    dirtyVolumes: volumes.filter((v) => v.dirtyRegions > 0).length,
    dirtyBytes: volumes.reduce((n, v) => n + v.dirtyBytes, 0),
  };
}

export function statusRoutes({ store, clock }: RouteDeps) {
  const startedAt = clock.now();
  const app = newApiApp();
  apiRoute(
    app,
    {
      method: "get",
      path: "/v1/status",
      summary: "Since when the tracker runs and how much it holds dirty",
      tags: ["status"],
      responses: { 200: jsonResponse(trackerStatus, "The tracker's status") },
    },
    async (c) =>
      c.json<TrackerStatus, 200>(trackerStatusOf(await store.list(), startedAt, clock.now()), 200),
  );
  return app;
}
