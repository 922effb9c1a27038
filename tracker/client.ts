/**
 * Typed client of the tracker, for the host agent and reconstruct. Every failure surfaces as a
 * `ServiceCallError` (status 0 when no answer came), see src/http_client.ts.
 */
import { call, callJson, type HttpClientOptions, ServiceCallError } from "../src/http_client.ts";
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

/** Client of one tracker at `baseUrl` (e.g. "http://127.0.0.1:8701"). */
export class TrackerClient {
  readonly baseUrl: string;

  constructor(baseUrl: string, private readonly opts: HttpClientOptions = {}) {
    this.baseUrl = baseUrl.replace(/\/+$/, "");
  }

  /** Registers a volume, or renews its lease when `reg.ownerHost` already holds it. */
  registerVolume(name: string, reg: VolumeRegistration): Promise<VolumeInfo> {
    return callJson(this.baseUrl, trackerPaths.volume(name), {
      method: "PUT",
      json: reg,
    }, this.opts);
  }

  /** Marks the regions the extents touch; resolves only once the tracker committed them. */
  track(req: TrackRequest): Promise<TrackResponse> {
    return callJson(this.baseUrl, trackerPaths.track, { method: "POST", json: req }, this.opts);
  }

  /** Every registered volume. */
  async listVolumes(): Promise<VolumeInfo[]> {
    const body = await callJson<{ volumes: VolumeInfo[] }>(
      this.baseUrl,
      trackerPaths.volumes,
      { method: "GET" },
      this.opts,
    );
    return body.volumes;
  }

  /** One volume, with its dirty region count and oldest mark. */
  getVolume(name: string): Promise<VolumeInfo> {
    return callJson(this.baseUrl, trackerPaths.volume(name), {
      method: "GET",
    }, this.opts);
  }

  /** One page of the volume's tracking log. */
  logPage(name: string, query: LogPageQuery = {}): Promise<LogPage> {
    return callJson(this.baseUrl, trackerPaths.log(name) + queryString(query), {
      method: "GET",
    }, this.opts);
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
    return callJson(this.baseUrl, trackerPaths.clear(name), {
      method: "POST",
      json: req,
    }, this.opts);
  }

  /**
   * Records the host's activity marks for the regions the extents touch (kept apart from dirty
   * marks); resolves only once the tracker committed them.
   */
  activity(req: ActivityRequest): Promise<ActivityResponse> {
    return callJson(this.baseUrl, trackerPaths.activity, { method: "POST", json: req }, this.opts);
  }

  /** Clears the host's activity marks of the regions the extents touch, once committed. */
  retireActivity(name: string, req: ActivityRetireRequest): Promise<ActivityRetireResponse> {
    return callJson(
      this.baseUrl,
      trackerPaths.retire(name),
      { method: "POST", json: req },
      this.opts,
    );
  }

  /**
   * Turns every activity mark of `host` on the volume into a dirty mark newer than any token
   * issued before, and clears them; what a restarting host (or reconstruct for a dead one) calls.
   */
  promoteActivity(name: string, host: string): Promise<ActivityPromoteResponse> {
    return callJson(
      this.baseUrl,
      trackerPaths.promote(name),
      { method: "POST", json: { host } },
      this.opts,
    );
  }

  /** One page of the volume's activity marks, of `query.host` or of every host. */
  activityPage(name: string, query: ActivityPageQuery = {}): Promise<ActivityPage> {
    return callJson(this.baseUrl, trackerPaths.volumeActivity(name) + queryString(query), {
      method: "GET",
    }, this.opts);
  }

  /** The tracker's own summary (`GET /v1/status`): since when it runs, what it holds dirty. */
  status(): Promise<TrackerStatus> {
    return callJson(this.baseUrl, trackerPaths.status, { method: "GET" }, this.opts);
  }

  /** True when the tracker answers its health check; false when it does not answer or fails. */
  async healthz(): Promise<boolean> {
    try {
      const res = await call(this.baseUrl, trackerPaths.healthz, { method: "GET" }, this.opts);
      await res.body?.cancel();
      return true;
    } catch (err) {
      if (err instanceof ServiceCallError) return false;
      throw err;
    }
  }
}
