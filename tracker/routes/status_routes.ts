/**
 * `GET /v1/status`: the tracker's own summary for `deno task status` and monitors (issue 11) —
 * since when it runs and how many volumes it holds dirty, with ISO 8601 times beside epoch ms.
 * Per-volume detail stays at `GET /v1/volumes`.
 */
import { Hono } from "hono";
import { isoTime } from "../../src/iso_time.ts";
import type { TrackerStatus } from "../../src/schemas.ts";
import type { RouteDeps } from "./route_deps.ts";

export function statusRoutes({ store, clock }: RouteDeps) {
  const startedAt = clock.now();
  return new Hono().get("/v1/status", async (c) => {
    const volumes = await store.list();
    const now = clock.now();
    return c.json<TrackerStatus>({
      service: "tracker",
      startedAt,
      startedAtIso: isoTime(startedAt),
      now,
      nowIso: isoTime(now),
      volumes: volumes.length,
      dirtyVolumes: volumes.filter((v) => v.dirtyRegions > 0).length,
      dirtyBytes: volumes.reduce((n, v) => n + v.dirtyBytes, 0),
    });
  });
}
