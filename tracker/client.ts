/**
 * Typed client of the tracker, for the host agent and reconstruct. Every failure surfaces as a
 * `ServiceCallError` (status 0 when no answer came), see src/http_client.ts.
 *
 * Given several trackers (issue 12: `--tracker URL,URL`, trackers sharing one store), every call
 * goes to the current one and fails over to the next on no answer, a timeout or a 5xx
 * (src/failover.ts); a 4xx is the tracker's answer and is never sent elsewhere.
 *
 * Why sending a call again to another tracker is safe although the first may have committed it
 * (the answer was lost, or the request timed out while the tracker went on):
 * - `track`, `activity`: they set bits. Twice is once, except that the regions' mark sequence
 *   moves on, so a clear whose token predates the second commit keeps them: a superset, safe.
 * - `registerVolume` (lease acquire / renew): the lease epoch is raised only when the owning
 *   instance changes (tracker/registration.ts). The retry names the same instance, so the second
 *   tracker finds the first one's commit and grants the same epoch — or, had another instance
 *   taken the volume in between, refuses with 409, which fences us as it would have anyway
 *   (host/agent/tracker_lease.ts). A takeover retried after its commit is a plain renewal.
 * - `clear`: guarded by its token: only regions not re-marked after the copy began are cleared,
 *   however often or late it is applied.
 * - `promoteActivity`: turns this host's activity marks into dirty marks; the second finds none
 *   left (or newer ones, which it rightly promotes): marks only grow.
 * - `retireActivity`: clears activity marks of regions the host dropped from its hot set, and
 *   clearing twice is clearing once. Not guarded: a retire that committed *late* (its tracker
 *   stalled, the host gave up on it and marked the same regions again through another tracker)
 *   would remove the newer activity mark. The same holds for one tracker whose request timed
 *   out; with Deno KV the late commit cannot happen across a failover (the first tracker is dead
 *   before a second opens its file). A retire carrying the host's activity sequence would close
 *   it (README "Status and limits").
 * - Reads (`getVolume`, `listVolumes`, `logPage`, `activityPage`, `status`, `healthz`) change
 *   nothing. A log cursor is read from the store, so a page may come from another tracker.
 */
import { FailoverTargets, type TargetView } from "../src/failover.ts";
import { call, callJson, type HttpClientOptions, ServiceCallError } from "../src/http_client.ts";
import { KeptHttpClient } from "../src/kept_http_client.ts";
import type {
  ActivityPage,
  ActivityPromoteResponse,
  ActivityRequest,
  ActivityResponse,
  ActivityRetireRequest,
  ActivityRetireResponse,
  ClearRequest,
  ClearResponse,
  LogPage,
  TrackerStatus,
  TrackRequest,
  TrackResponse,
  VolumeInfo,
  VolumeRegistration,
} from "../src/schemas.ts";

/** Query of one log page; `cursor` comes from the previous page's `nextCursor`. */
export interface LogPageQuery {
  since?: number;
  until?: number;
  cursor?: string;
  limit?: number;
}

/** Query of one activity page; `cursor` comes from the previous page's `nextCursor`. */
export interface ActivityPageQuery {
  /** Only this host's activity; every host's when absent. */
  host?: string;
  cursor?: string;
  limit?: number;
}

/** Every tracker path the client calls, in one place (the routes are in routes/). */
export const trackerPaths = {
  track: "/v1/track",
  activity: "/v1/activity",
  volumes: "/v1/volumes",
  volume: (name: string) => `/v1/volumes/${encodeURIComponent(name)}`,
  log: (name: string) => `/v1/volumes/${encodeURIComponent(name)}/log`,
  clear: (name: string) => `/v1/volumes/${encodeURIComponent(name)}/clear`,
  volumeActivity: (name: string) => `/v1/volumes/${encodeURIComponent(name)}/activity`,
  retire: (name: string) => `/v1/volumes/${encodeURIComponent(name)}/activity/retire`,
  promote: (name: string) => `/v1/volumes/${encodeURIComponent(name)}/activity/promote`,
  healthz: "/healthz",
  status: "/v1/status",
} as const;

/** `?key=value&...` of the defined entries of `query`, or "" when none. */
function queryString(query: object): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined) params.set(key, String(value));
  }
  return params.size ? `?${params}` : "";
}

/** Options of the tracker client. */
export interface TrackerClientOptions extends HttpClientOptions {
  /**
   * Send `track` and `activity` on kept TCP connections (src/kept_http_client.ts) instead of
   * `fetch`: the host agent's hot calls. The owner then calls `close` when done.
   */
  keptConnections?: boolean;
}

/** How often the host agent asks the trackers it is not using whether they answer. */
export const trackerProbeIntervalMsDefault = 5000;

/**
 * Client of the tracker at `baseUrl` (e.g. "http://127.0.0.1:8701"), or of the first answering
 * of several trackers over one store (a list of base URLs, current one first).
 */
export class TrackerClient {
  // Not a #private field: the host wraps this client in a Proxy (host/agent/tracker_health.ts),
  // and a getter reading a #field through a Proxy throws.
  private readonly targets: FailoverTargets;
  /** Kept connections for `track` and `activity`, when asked for (TrackerClientOptions). */
  private readonly kept: KeptHttpClient | null;

  constructor(
    baseUrl: string | readonly string[],
    private readonly opts: TrackerClientOptions = {},
  ) {
    const urls = typeof baseUrl === "string" ? [baseUrl] : baseUrl;
    this.targets = new FailoverTargets(urls.map((url) => url.replace(/\/+$/, "")));
    this.kept = opts.keptConnections ? new KeptHttpClient(opts) : null;
  }

  /** Closes the kept connections (when any); the client still works after, opening new ones. */
  close(): void {
    this.kept?.close();
  }

  /** The tracker calls go to now (the first, until it failed to answer). */
  get baseUrl(): string {
    return this.targets.current;
  }

  /** Every tracker of the list, in order. */
  get baseUrls(): readonly string[] {
    return this.targets.urls;
  }

  /** Each tracker's reachability as calls and probes found it, and which one is current. */
  trackers(): TargetView[] {
    return this.targets.view();
  }

  /** Asks every tracker's health check now (concurrently), without changing the current one. */
  probeAll(): Promise<void> {
    return this.targets.probe(async (url) => {
      const res = await call(url, trackerPaths.healthz, { method: "GET" }, this.opts);
      await res.body?.cancel();
    });
  }

  /** `callJson` of `path` at the current tracker, failing over to the next ones. */
  #json<T>(path: string, init: RequestInit & { json?: unknown }): Promise<T> {
    return this.targets.run((url) => callJson<T>(url, path, init, this.opts));
  }

  /**
   * POSTs `json` to `path` at the current tracker, failing over like `#json`; on kept
   * connections when the client keeps them (only for calls safe to send twice: the file comment).
   */
  #post<T>(path: string, json: unknown): Promise<T> {
    const kept = this.kept;
    if (!kept) return this.#json(path, { method: "POST", json });
    return this.targets.run((url) => kept.postJson<T>(url, path, json));
  }

  /** Registers a volume, or renews its lease when `reg.ownerHost` already holds it. */
  registerVolume(name: string, reg: VolumeRegistration): Promise<VolumeInfo> {
    return this.#json(trackerPaths.volume(name), {
      method: "PUT",
      json: reg,
    });
  }

  /** Marks the regions the extents touch; resolves only once the tracker committed them. */
  track(req: TrackRequest): Promise<TrackResponse> {
    return this.#post(trackerPaths.track, req);
  }

  /** Every registered volume. */
  async listVolumes(): Promise<VolumeInfo[]> {
    const body = await this.#json<{ volumes: VolumeInfo[] }>(trackerPaths.volumes, {
      method: "GET",
    });
    return body.volumes;
  }

  /** One volume, with its dirty region count and oldest mark. */
  getVolume(name: string): Promise<VolumeInfo> {
    return this.#json(trackerPaths.volume(name), {
      method: "GET",
    });
  }

  /** One page of the volume's tracking log. */
  logPage(name: string, query: LogPageQuery = {}): Promise<LogPage> {
    return this.#json(trackerPaths.log(name) + queryString(query), {
      method: "GET",
    });
  }

  /**
   * Every page of the volume's log from `query.cursor` (or the start), following `nextCursor`;
   * all pages share the first page's token.
   */
  async *log(name: string, query: LogPageQuery = {}): AsyncGenerator<LogPage> {
    let page = await this.logPage(name, query);
    yield page;
    while (page.nextCursor !== null) {
      page = await this.logPage(name, { ...query, cursor: page.nextCursor });
      yield page;
    }
  }

  /** Clears regions not re-marked after `req.token` (all dirty regions when no extents). */
  clear(name: string, req: ClearRequest): Promise<ClearResponse> {
    return this.#json(trackerPaths.clear(name), {
      method: "POST",
      json: req,
    });
  }

  /**
   * Records the host's activity marks for the regions the extents touch (kept apart from dirty
   * marks); resolves only once the tracker committed them.
   */
  activity(req: ActivityRequest): Promise<ActivityResponse> {
    return this.#post(trackerPaths.activity, req);
  }

  /** Clears the host's activity marks of the regions the extents touch, once committed. */
  retireActivity(name: string, req: ActivityRetireRequest): Promise<ActivityRetireResponse> {
    return this.#json(trackerPaths.retire(name), { method: "POST", json: req });
  }

  /**
   * Turns every activity mark of `host` on the volume into a dirty mark newer than any token
   * issued before, and clears them; what a restarting host (or reconstruct for a dead one) calls.
   */
  promoteActivity(name: string, host: string): Promise<ActivityPromoteResponse> {
    return this.#json(trackerPaths.promote(name), { method: "POST", json: { host } });
  }

  /** One page of the volume's activity marks, of `query.host` or of every host. */
  activityPage(name: string, query: ActivityPageQuery = {}): Promise<ActivityPage> {
    return this.#json(trackerPaths.volumeActivity(name) + queryString(query), {
      method: "GET",
    });
  }

  /** The tracker's own summary (`GET /v1/status`): since when it runs, what it holds dirty. */
  status(): Promise<TrackerStatus> {
    return this.#json(trackerPaths.status, { method: "GET" });
  }

  /** True when the tracker answers its health check; false when it does not answer or fails. */
  async healthz(): Promise<boolean> {
    try {
      const res = await this.targets.run((url) =>
        call(url, trackerPaths.healthz, { method: "GET" }, this.opts)
      );
      await res.body?.cancel();
      return true;
    } catch (err) {
      if (err instanceof ServiceCallError) return false;
      throw err;
    }
  }
}
