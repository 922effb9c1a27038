/**
 * Turns what the services answered into the status document (pure: the command's I/O is in
 * status_gather.ts), deciding each volume's in-sync state and the system's health and exit code.
 */
import type { HostStatus, HostVolumeView } from "../host_schemas.ts";
import { isoTime } from "../iso_time.ts";
import type { BackupStatus, TrackerStatus, VolumeInfo } from "../schemas.ts";
import { notInSyncReasons } from "./in_sync.ts";
import { storeProblem } from "./store_problem.ts";
import {
  type BackupRow,
  type Health,
  type HostComponentView,
  type HostRow,
  statusExit,
  statusFormat,
  type SystemStatus,
  type VolumeRow,
} from "./status_document.ts";

/** A call that got no usable answer. */
export interface Unanswered {
  error: string;
}

/** One tracker of a `--tracker URL,URL...` list as the command found it (issue 12). */
export interface TrackerAnswer {
  url: string;
  /** The one the command's calls were answered by (or, when none answered, the first). */
  current: boolean;
  state: "online" | "offline";
  error: string | null;
}

/** What the services answered (or why not), as status_gather.ts collected it. */
export interface Answers {
  /** The command's clock when it asked (epoch ms). */
  at: number;
  /** The tracker that answered (of several, the current one; the first when none answered). */
  trackerUrl: string;
  /** With several trackers: each one of them; absent with one. */
  trackers?: TrackerAnswer[];
  tracker:
    | { volumes: VolumeInfo[]; status: TrackerStatus | null }
    | (Unanswered & { status?: TrackerStatus | null });
  /** By owner URL, as the tracker names it. */
  hosts: ReadonlyMap<string, HostStatus | Unanswered>;
  /** By backup URL, as the host agents name it. */
  backups: ReadonlyMap<string, BackupStatus | Unanswered>;
}

function unanswered<T extends object>(a: T | Unanswered | undefined): a is Unanswered | undefined {
  return a === undefined || "error" in a;
}

/** The status document of `answers`. */
export function assembleStatus(answers: Answers): SystemStatus {
  const down: string[] = [];
  const degraded: string[] = [];
  const t = answers.tracker;
  const store = t.status?.store ?? null;
  // A tracker that answers but whose store does not: every volume's marks fail (and so do the
  // writes that need one), so the system is down for all it serves.
  const storeDown = store?.ok === false
    ? `tracker ${answers.trackerUrl} answers but its store does not: ${storeProblem(store)}`
    : null;
  if ("error" in t) {
    const which = answers.trackers
      ? `none of the trackers ${answers.trackers.map((s) => s.url).join(", ")} answers`
      : `tracker ${answers.trackerUrl} does not answer`;
    down.push(
      storeDown ? `${storeDown}; the volumes it serves cannot be read` : `${which}: ${t.error}`,
    );
    const since = storeDown ? t.status?.startedAt ?? null : null;
    return finish(
      answers,
      down,
      degraded,
      {
        url: answers.trackerUrl,
        state: storeDown ? "degraded" : "offline",
        since,
        sinceIso: isoTime(since),
        error: t.error,
        volumes: null,
        dirtyVolumes: null,
        store,
      },
      [],
      [],
      [],
    );
  }
  if (storeDown) down.push(`${storeDown}; the volumes it serves cannot be marked`);
  for (const standby of answers.trackers ?? []) {
    if (standby.state === "online") continue;
    degraded.push(`tracker ${standby.url} (standby) does not answer: ${standby.error}`);
  }
  const trackerNow = t.status?.now ?? answers.at;
  const hosts = [...answers.hosts].map(([url, a]) => hostRow(url, a, down, degraded));
  const backups = [...answers.backups].map(([url, a]) => backupRow(url, a, down, degraded));
  const volumes = t.volumes.map((info) => volumeRow(info, answers, trackerNow));
  for (const v of volumes) {
    if (v.inSync) continue;
    const line = `volume ${v.name}: not in sync: ${v.notInSync.join("; ")}`;
    (v.fenced || v.served === false ? down : degraded).push(line);
  }
  return finish(
    answers,
    down,
    degraded,
    {
      url: answers.trackerUrl,
      state: storeDown ? "degraded" : "online",
      since: t.status?.startedAt ?? null,
      sinceIso: isoTime(t.status?.startedAt ?? null),
      error: store?.ok === false ? storeProblem(store) : null,
      volumes: t.volumes.length,
      dirtyVolumes: t.volumes.filter((v) => v.dirtyRegions > 0).length,
      store,
    },
    hosts,
    backups,
    volumes,
  );
}

function finish(
  answers: Answers,
  down: string[],
  degraded: string[],
  tracker: SystemStatus["tracker"],
  hosts: HostRow[],
  backups: BackupRow[],
  volumes: VolumeRow[],
): SystemStatus {
  const health: Health = down.length > 0 ? "down" : degraded.length > 0 ? "degraded" : "healthy";
  return {
    format: statusFormat,
    at: answers.at,
    atIso: isoTime(answers.at),
    health,
    exitCode: statusExit[health],
    problems: [...down, ...degraded],
    tracker: answers.trackers ? { ...tracker, urls: answers.trackers } : tracker,
    hosts,
    backups,
    volumes,
  };
}

function componentView(
  c: HostStatus["components"]["backup"] | HostStatus["components"]["tracker"],
): HostComponentView {
  const since = "since" in c && c.since !== undefined ? c.since : null;
  return {
    url: c.url ?? null,
    state: c.state ?? "unknown",
    since,
    sinceIso: isoTime(since),
    lastError: c.lastError,
  };
}

function hostRow(
  url: string,
  a: HostStatus | Unanswered,
  down: string[],
  degraded: string[],
): HostRow {
  if ("error" in a) {
    down.push(`host agent ${url} does not answer: ${a.error}`);
    const none = { since: null, sinceIso: null, id: null, mode: null, ack: null };
    return { url, state: "offline", error: a.error, ...none, backup: null, tracker: null };
  }
  const backup = componentView(a.components.backup);
  const tracker = componentView(a.components.tracker);
  const who = `host ${a.host} (${url})`;
  if (backup.state === "offline" || backup.state === "probing") {
    down.push(`${who} sees its backup ${backup.state}` + why(backup.lastError));
  } else if (backup.state === "degraded") {
    degraded.push(`${who} sees its backup degraded` + why(backup.lastError));
  }
  if (tracker.state === "offline") {
    down.push(`${who} sees its tracker offline` + why(tracker.lastError));
  }
  if (a.mode === "pass-through") degraded.push(`${who} does not fork writes (pass-through)`);
  return {
    url,
    state: "online",
    since: a.startedAt ?? null,
    sinceIso: isoTime(a.startedAt ?? null),
    error: null,
    id: a.host,
    mode: a.mode,
    ack: a.ack,
    backup,
    tracker,
  };
}

function why(error: string | null): string {
  return error ? ` (last error: ${error})` : "";
}

function backupRow(
  url: string,
  a: BackupStatus | Unanswered,
  down: string[],
  degraded: string[],
): BackupRow {
  if ("error" in a) {
    down.push(`backup ${url} does not answer: ${a.error}`);
    return {
      url,
      state: "offline",
      since: null,
      sinceIso: null,
      error: a.error,
      journalBytesPending: null,
      journalBytesMax: null,
      recordsAcknowledged: null,
      recordsApplied: null,
    };
  }
  if (a.state === "degraded") degraded.push(`backup ${url} is degraded: ${a.reason}`);
  return {
    url,
    state: a.state === "ok" ? "online" : "degraded",
    since: a.startedAt ?? null,
    sinceIso: isoTime(a.startedAt ?? null),
    error: a.state === "ok" ? a.applierError : a.reason,
    journalBytesPending: a.journalBytesPending,
    journalBytesMax: a.journalBytesMax,
    recordsAcknowledged: a.recordsAcknowledged,
    recordsApplied: a.recordsApplied,
  };
}

function volumeRow(info: VolumeInfo, answers: Answers, trackerNow: number): VolumeRow {
  const hostAnswer = answers.hosts.get(info.ownerUrl);
  const host = unanswered(hostAnswer) ? undefined : hostAnswer;
  const hv: HostVolumeView | undefined = host?.volumes.find((v) => v.name === info.name);
  const backupUrl = host?.components.backup.url ?? null;
  const backupAnswer = backupUrl === null ? undefined : answers.backups.get(backupUrl);
  const backup = unanswered(backupAnswer) ? undefined : backupAnswer;
  const lagEntry = backup?.lag?.find((l) => l.volume === info.name);
  const cycle = backup?.openCycles?.find((c) => c.volume === info.name);
  const lag = lagEntry
    ? {
      bytes: lagEntry.bytes,
      records: lagEntry.records,
      seconds: lagEntry.seconds,
      oldestAt: lagEntry.oldestAt,
      oldestAtIso: lagEntry.oldestAtIso,
    }
    : null;
  const notInSync = notInSyncReasons({
    dirtyRegions: info.dirtyRegions,
    dirtyBytes: info.dirtyBytes,
    backupState: host ? host.components.backup.state : null,
    lag,
    trust: hv?.trust ?? null,
    resyncRunning: hv?.resync.state === "running",
    openCycleRecords: cycle?.stagedRecords ?? 0,
    served: host === undefined || hv !== undefined,
    fenced: hv?.fenced ?? false,
  });
  return {
    name: info.name,
    sizeBytes: info.sizeBytes,
    regionBytes: info.regionBytes,
    ownerHost: info.ownerHost,
    ownerUrl: info.ownerUrl,
    served: host === undefined ? null : hv !== undefined,
    mode: host?.mode ?? null,
    ack: host?.ack ?? null,
    backupUrl,
    inSync: notInSync.length === 0,
    notInSync,
    dirty: {
      bytes: info.dirtyBytes,
      regions: info.dirtyRegions,
      oldestMarkAt: info.oldestMarkAt,
      oldestMarkAtIso: isoTime(info.oldestMarkAt),
      oldestMarkAgeSeconds: info.oldestMarkAt === null
        ? null
        : Math.max(0, (trackerNow - info.oldestMarkAt) / 1000),
    },
    lag,
    trust: hv?.trust ?? null,
    trustReason: hv?.trustReason ?? null,
    fenced: hv?.fenced ?? false,
    resync: hv && hv.resync.state !== "idle" ? hv.resync : null,
    openCycle: cycle
      ? {
        stagedBytes: cycle.stagedBytes,
        stagedRecords: cycle.stagedRecords,
        regions: cycle.regions,
      }
      : null,
  };
}
