/**
 * Asks the services what the status document shows, the way reconstruct finds them: the tracker's
 * volumes name their owners' host agents; each agent's status names the backup it forks to. Calls
 * to different services run concurrently, each bounded by `statusCallTimeoutMs`, so one stopped
 * process costs one timeout, not one per volume.
 *
 * It lives in src/ and speaks plain HTTP (src/http_client.ts) with the paths below, so both
 * `deno task status` (host/status/) and the tracker's `/v1/overview` can use it: the tracker
 * passes its own answer (`gatherFrom`) instead of calling itself. tests/status_paths.test.ts
 * checks these paths against the services' own route tables.
 */
import { callJson, type HttpClientOptions } from "../http_client.ts";
import { type HostStatus, hostStatus } from "../host_schemas.ts";
import type { BackupStatus, TrackerStatus, VolumeInfo } from "../schemas.ts";
import type { Answers, Unanswered } from "./status_assemble.ts";

/** Longest the gather waits for any one service's answer. */
export const statusCallTimeoutMs = 3000;

/** The paths the gather reads: tracker, host agent and backup each answer `/v1/status`. */
export const statusPaths = {
  trackerVolumes: "/v1/volumes",
  trackerStatus: "/v1/status",
  hostStatus: "/v1/status",
  backupStatus: "/v1/status",
} as const;

export interface GatherOptions {
  trackerUrl: string;
  token?: string;
  timeoutMs?: number;
}

/** What the tracker answered: its volumes and its own summary (null when it has none). */
export type TrackerAnswer = { volumes: VolumeInfo[]; status: TrackerStatus | null } | Unanswered;

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

/** Everything the services answer now (or why they did not), starting at the tracker's URL. */
export async function gatherAnswers(opts: GatherOptions): Promise<Answers> {
  const at = Date.now();
  const client = clientOptions(opts);
  const get = <T>(path: string) => callJson<T>(opts.trackerUrl, path, { method: "GET" }, client);
  const [volumes, trackerStatus] = await Promise.all([
    answerOf(async () =>
      (await get<{ volumes: VolumeInfo[] }>(statusPaths.trackerVolumes)).volumes
    ),
    // Older trackers have no /v1/status: its absence is no reason to call the tracker down.
    answerOf(() => get<TrackerStatus>(statusPaths.trackerStatus)),
  ]);
  const tracker: TrackerAnswer = "error" in volumes
    ? volumes
    : { volumes, status: "error" in trackerStatus ? null : trackerStatus };
  return await gatherFrom(tracker, opts, at);
}

/**
 * The rest of the gather, given the tracker's answer: its volumes' owners and the backups they
 * name. `at` is when the tracker's answer was taken (epoch ms).
 */
export async function gatherFrom(
  tracker: TrackerAnswer,
  opts: GatherOptions,
  at: number,
): Promise<Answers> {
  const client = clientOptions(opts);
  const hosts = new Map<string, HostStatus | Unanswered>();
  const backups = new Map<string, BackupStatus | Unanswered>();
  if ("error" in tracker) return { at, trackerUrl: opts.trackerUrl, tracker, hosts, backups };
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
  return { at, trackerUrl: opts.trackerUrl, tracker, hosts, backups };
}
