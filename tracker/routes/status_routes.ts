/**
 * `GET /v1/status`: the tracker's own summary for `deno task status` and monitors (issue 11) —
 * since when it runs, how many volumes it holds dirty and whether its store answers, with ISO
 * 8601 times beside epoch ms. Per-volume detail stays at `GET /v1/volumes`.
 *
 * The answer never waits long on the store: `store` is the latest background probe
 * (tracker/store/store_probe.ts); when it says the store is not ok the store is not asked and
 * the counts are the last ones read (`volumesAt`), and otherwise the listing is bounded by the
 * probe's timeout. A tracker without a probe (in-process tests) lists as before.
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
import type { TrackerState } from "../tracker_state.ts";
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

/** The volumes as last read from the store, and when. */
export interface VolumesSeen {
  volumes: VolumeInfo[];
  at: number;
}

/**
 * The tracker's volumes for a summary, without waiting long on a store that may not answer
 * (see the file comment); one listing at a time, whose late answer still refreshes `last`.
 */
export class VolumesReader {
  #last: VolumesSeen | null = null;
  #listing: Promise<VolumesSeen> | null = null;

  constructor(
    private readonly deps: { store: TrackerState; clock: RouteDeps["clock"] },
    private readonly probe?: StoreProbe,
  ) {}

  /** The last volumes read (null when never). */
  get last(): VolumesSeen | null {
    return this.#last;
  }

  /** The volumes now, or the last ones read when the store is not ok or slow. */
  async read(): Promise<VolumesSeen | null> {
    if (!this.probe) return this.#list();
    if (this.probe.last?.ok === false) return this.#last;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const slow = new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), this.probe!.timeoutMs);
    });
    const listing = this.#list().catch(() => null);
    const seen = await Promise.race([listing, slow]);
    clearTimeout(timer);
    return seen ?? this.#last;
  }

  #list(): Promise<VolumesSeen> {
    this.#listing ??= (async () => {
      try {
        const at = this.deps.clock.now();
        const volumes = await this.deps.store.list();
        this.#last = { volumes, at };
        return this.#last;
      } finally {
        this.#listing = null;
      }
    })();
    return this.#listing;
  }
}

/** The tracker's status now (for `/v1/status` and the overview). */
export async function trackerStatusNow(
  reader: VolumesReader,
  startedAt: number,
  deps: { clock: RouteDeps["clock"]; storeProbe?: StoreProbe },
): Promise<{ status: TrackerStatus; volumes: VolumeInfo[] | null }> {
  const seen = await reader.read();
  const store = deps.storeProbe?.last ?? null;
  const status = trackerStatusOf(seen?.volumes ?? [], startedAt, deps.clock.now(), {
    volumesAt: seen?.at ?? null,
    store,
  });
  return { status, volumes: seen?.volumes ?? null };
}

export function statusRoutes(deps: RouteDeps) {
  const startedAt = deps.clock.now();
  const reader = new VolumesReader(deps, deps.storeProbe);
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
    async (c) =>
      c.json<TrackerStatus, 200>((await trackerStatusNow(reader, startedAt, deps)).status, 200),
  );
  return app;
}
