/**
 * Asks the services what `deno task status` shows, the way reconstruct finds them: the tracker's
 * volumes name their owners' host agents; each agent's status names the backup it forks to. Calls
 * to different services run concurrently, each bounded by `statusCallTimeoutMs`, so one stopped
 * process costs the command one timeout, not one per volume.
 */
import type { HostStatus } from "../../src/host_schemas.ts";
import type { BackupStatus, TrackerStatus } from "../../src/schemas.ts";
import { BackupClient } from "../../backup/client.ts";
import { TrackerClient } from "../../tracker/client.ts";
import { HostClient } from "../client.ts";
import type { Answers, TrackerAnswer, Unanswered } from "./status_assemble.ts";

/** Longest the command waits for any one service's answer. */
export const statusCallTimeoutMs = 3000;

export interface GatherOptions {
  /** The tracker, or several over one store (issue 12): the first that answers is asked. */
  trackerUrl: string | readonly string[];
  token?: string;
  timeoutMs?: number;
}

async function answerOf<T>(call: () => Promise<T>): Promise<T | Unanswered> {
  try {
    return await call();
  } catch (err) {
    return { error: (err as Error).message };
  }
}

/** Everything the services answer now (or why they did not). */
export async function gatherAnswers(opts: GatherOptions): Promise<Answers> {
  const client = { token: opts.token, timeoutMs: opts.timeoutMs ?? statusCallTimeoutMs };
  const at = Date.now();
  const tracker = new TrackerClient(opts.trackerUrl, client);
  const several = tracker.baseUrls.length > 1;
  const [volumes, trackerStatus] = await Promise.all([
    answerOf(() => tracker.listVolumes()),
    // Older trackers have no /v1/status: its absence is no reason to call the tracker down.
    answerOf<TrackerStatus | null>(() => tracker.status()),
    // With several, each one's health check, so a standby that would not answer shows.
    several ? tracker.probeAll() : undefined,
  ]);
  const trackerUrl = tracker.baseUrl;
  const trackers = several ? trackerViews(tracker) : undefined;
  const hosts = new Map<string, HostStatus | Unanswered>();
  const backups = new Map<string, BackupStatus | Unanswered>();
  if ("error" in volumes) {
    return { at, trackerUrl, trackers, tracker: volumes, hosts, backups };
  }
  const ownerUrls = [...new Set(volumes.map((v) => v.ownerUrl))];
  const hostAnswers = await Promise.all(
    ownerUrls.map((url) => answerOf(() => new HostClient(url, client).status())),
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
    backupUrls.map((url) => answerOf(() => new BackupClient(url, client).status())),
  );
  backupUrls.forEach((url, i) => backups.set(url, backupAnswers[i]));
  return {
    at,
    trackerUrl,
    trackers,
    tracker: { volumes, status: "error" in trackerStatus! ? null : trackerStatus },
    hosts,
    backups,
  };
}

/** Each tracker of the list as the calls and the health checks found it. */
function trackerViews(tracker: TrackerClient): TrackerAnswer[] {
  return tracker.trackers().map((t) => ({
    url: t.url,
    current: t.current,
    state: t.state === "online" ? "online" : "offline",
    error: t.state === "online" ? null : t.lastError ?? "not reached",
  }));
}
