/**
 * Asks the services what the status document shows, the way reconstruct finds them: the tracker's
 * volumes name their owners' host agents; each agent's status names the backup it forks to. Calls
 * to different services run concurrently, each bounded by `statusCallTimeoutMs`, so one stopped
 * process costs one timeout, not one per volume. Given several trackers over one store (issue 12,
 * `--tracker URL,URL...`), the first that answers is asked (src/failover.ts), and each one's
 * health check is read too, so a standby that would not answer shows.
 *
 * It lives in src/ and speaks plain HTTP (src/http_client.ts) with the paths below, so both
 * `deno task status` (host/status/) and the tracker's `/v1/overview` can use it: the tracker
 * passes its own answer (`gatherFrom`) instead of calling itself. tests/status_paths.test.ts
 * checks these paths against the services' own route tables.
 */
import { FailoverTargets } from "../failover.ts";
import { call, callJson, type HttpClientOptions } from "../http_client.ts";
import { type HostStatus, hostStatus } from "../host_schemas.ts";
import type { BackupStatus, TrackerStatus, VolumeInfo } from "../schemas.ts";
import type { Answers, TrackerAnswer, Unanswered } from "./status_assemble.ts";
import { storeProblem } from "./store_problem.ts";

/** Longest the gather waits for any one service's answer. */
export const statusCallTimeoutMs = 3000;

/** The paths the gather reads: tracker, host agent and backup each answer `/v1/status`. */
export const statusPaths = {
  trackerHealth: "/healthz",
  trackerVolumes: "/v1/volumes",
  trackerStatus: "/v1/status",
  hostStatus: "/v1/status",
  backupStatus: "/v1/status",
} as const;

export interface GatherOptions {
  /** The tracker, or several over one store (issue 12): the first that answers is asked. */
  trackerUrl: string | readonly string[];
  token?: string;
  timeoutMs?: number;
}

/**
 * What the tracker answered: its volumes and its own summary (null when it has none); when the
 * volumes did not come, why, with the summary when that came (it says whether the store answers).
 */
export type TrackerReply =
  | { volumes: VolumeInfo[]; status: TrackerStatus | null }
  | (Unanswered & { status?: TrackerStatus | null });

async function answerOf<T>(call: () => Promise<T>): Promise<T | Unanswered> {
  try {
    return await call();
  } catch (err) {
    return { error: (err as Error).message };
  }
}

function clientOptions(opts: GatherOptions): HttpClientOptions {
  return { token: opts.token, timeoutMs: opts.timeoutMs ?? statusCallTimeoutMs };
}

/** Everything the services answer now (or why they did not), starting at the tracker's URL(s). */
export async function gatherAnswers(opts: GatherOptions): Promise<Answers> {
  const at = Date.now();
  const client = clientOptions(opts);
  const urls = typeof opts.trackerUrl === "string" ? [opts.trackerUrl] : opts.trackerUrl;
  const targets = new FailoverTargets(urls.map((url) => url.replace(/\/+$/, "")));
  const several = targets.urls.length > 1;
  const get = <T>(path: string) =>
    targets.run((url) => callJson<T>(url, path, { method: "GET" }, client));
  const [[trackerStatus, volumes]] = await Promise.all([
    (async () => {
      // Older trackers have no /v1/status: its absence is no reason to call the tracker down.
      const status = await answerOf(() => get<TrackerStatus>(statusPaths.trackerStatus));
      // A tracker that says its store does not answer is not asked for volumes: they would
      // wait on that store until the call timed out.
      if (!("error" in status) && status.store?.ok === false) {
        return [status, { error: storeProblem(status.store) }] as const;
      }
      const volumes = await answerOf(async () =>
        (await get<{ volumes: VolumeInfo[] }>(statusPaths.trackerVolumes)).volumes
      );
      return [status, volumes] as const;
    })(),
    // With several, each one's health check, so a standby that would not answer shows.
    several
      ? targets.probe(async (url) => {
        const res = await call(url, statusPaths.trackerHealth, { method: "GET" }, client);
        await res.body?.cancel();
      })
      : undefined,
  ]);
  const status = "error" in trackerStatus ? null : trackerStatus;
  const tracker: TrackerReply = "error" in volumes ? { ...volumes, status } : { volumes, status };
  const trackers = several ? trackerViews(targets) : undefined;
  return await gatherFrom(tracker, { ...opts, trackerUrl: targets.current }, at, trackers);
}

/** Each tracker of the list as the calls and the health checks found it. */
function trackerViews(targets: FailoverTargets): TrackerAnswer[] {
  return targets.view().map((t) => ({
    url: t.url,
    current: t.current,
    state: t.state === "online" ? "online" : "offline",
    error: t.state === "online" ? null : t.lastError ?? "not reached",
  }));
}

/**
 * The rest of the gather, given the tracker's answer: its volumes' owners and the backups they
 * name. `at` is when the tracker's answer was taken (epoch ms); `trackers`, each tracker of a list.
 */
export async function gatherFrom(
  tracker: TrackerReply,
  opts: GatherOptions & { trackerUrl: string },
  at: number,
  trackers?: TrackerAnswer[],
): Promise<Answers> {
  const client = clientOptions(opts);
  const trackerUrl = opts.trackerUrl;
  const hosts = new Map<string, HostStatus | Unanswered>();
  const backups = new Map<string, BackupStatus | Unanswered>();
  if ("error" in tracker) return { at, trackerUrl, trackers, tracker, hosts, backups };
  const ownerUrls = [...new Set(tracker.volumes.map((v) => v.ownerUrl))];
  const hostAnswers = await Promise.all(
    ownerUrls.map((url) =>
      answerOf(async () =>
        hostStatus.parse(await callJson(url, statusPaths.hostStatus, { method: "GET" }, client))
      )
    ),
  );
  ownerUrls.forEach((url, i) => hosts.set(url, hostAnswers[i]));
  const backupUrls = [
    ...new Set(
      hostAnswers.flatMap((h) =>
        "error" in h || !h.components.backup.url ? [] : [h.components.backup.url]
      ),
    ),
  ];
  const backupAnswers = await Promise.all(
    backupUrls.map((url) =>
      answerOf(() =>
        callJson<BackupStatus>(url, statusPaths.backupStatus, { method: "GET" }, client)
      )
    ),
  );
  backupUrls.forEach((url, i) => backups.set(url, backupAnswers[i]));
  return { at, trackerUrl, trackers, tracker, hosts, backups };
}
