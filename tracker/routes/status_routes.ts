/**
 * `GET /v1/status`: the tracker's own summary for `deno task status` and monitors (issue 11) —
 * since when it runs, how many volumes it holds dirty and whether its store answers, with ISO
 * 8601 times beside epoch ms. Per-volume detail stays at `GET /v1/volumes`.
 *
 * The answer never waits on the store: `store` is the latest background probe
 * (tracker/store/store_probe.ts), and the counts are the volumes the probe last read after a
 * check that found the store answering (volumes_seen.ts; `volumesAt` says when). A
 * tracker without a probe (in-process tests) lists its volumes for each answer, as before.
 */
import { apiRoute, jsonResponse, newApiApp } from "../../src/api_route.ts";
import { isoTime } from "../../src/iso_time.ts";
import {
  type StoreHealth,
  type TrackerStatus,
  trackerStatus,
  type VolumeInfo,
} from "../../src/schemas.ts";
import type { StoreProbe } from "../store/store_probe.ts";
import { VolumesReader } from "./volumes_seen.ts";
import type { RouteDeps } from "./route_deps.ts";

/** The summary of `volumes` at `now` (also the tracker's part of `/v1/overview`). */
export function trackerStatusOf(
  volumes: readonly VolumeInfo[],
  startedAt: number,
  now: number,
  seen: { volumesAt?: number | null; store?: StoreHealth | null } = {},
): TrackerStatus {
  const volumesAt = seen.volumesAt === undefined ? now : seen.volumesAt;
  return {
    service: "tracker",
    startedAt,
    startedAtIso: isoTime(startedAt),
    now,
    nowIso: isoTime(now),
    volumes: volumes.length,
    dirtyVolumes: volumes.filter((v) => v.dirtyRegions > 0).length,
    dirtyBytes: volumes.reduce((n, v) => n + v.dirtyBytes, 0),
    volumesAt,
    volumesAtIso: isoTime(volumesAt),
    ...(seen.store ? { store: seen.store } : {}),
  };
}

/** The tracker's status now, from `reader`: see the file comment. */
export async function trackerStatusNow(
  reader: VolumesReader,
  startedAt: number,
  deps: { clock: RouteDeps["clock"]; storeProbe?: StoreProbe },
): Promise<TrackerStatus> {
  const seen = deps.storeProbe ? reader.last : await reader.refresh();
  return trackerStatusOf(seen?.volumes ?? [], startedAt, deps.clock.now(), {
    volumesAt: seen?.at ?? null,
    store: deps.storeProbe?.last ?? null,
  });
}

export function statusRoutes(deps: RouteDeps) {
  const startedAt = deps.clock.now();
  const reader = deps.volumesSeen ?? new VolumesReader(deps.store, deps.clock);
  const app = newApiApp();
  apiRoute(
    app,
    {
      method: "get",
      path: "/v1/status",
      summary: "Since when the tracker runs, how much it holds dirty, whether its store answers",
      tags: ["status"],
      responses: { 200: jsonResponse(trackerStatus, "The tracker's status") },
    },
    async (c) => c.json<TrackerStatus, 200>(await trackerStatusNow(reader, startedAt, deps), 200),
  );
  return app;
}
