/**
 * Builds the host agent's `/v1/status` document from its volumes, backup link and lease. Every
 * epoch-ms time has an ISO 8601 twin (`...Iso`, issue 11) beside it; the ms fields stay.
 */
import type {
  ComponentStatusView,
  HostMode,
  HostStatus,
  ResyncProgress,
} from "../../src/host_schemas.ts";
import { isoTime } from "../../src/iso_time.ts";
import type { TargetView } from "../../src/failover.ts";
import type { TrackerHealth } from "./tracker_health.ts";
import { type HostVolume, latestResync } from "./volume_stack.ts";

export interface StatusInputs {
  hostId: string;
  /** This agent process's lease identity. */
  instance: string;
  advertiseUrl: string;
  /** false: the primary is served directly (no fork). */
  forking: boolean;
  backup: ComponentStatusView;
  ack: "durable" | "received";
  unhardened: { uncoveredRegions: number; regionsCovered: number };
  /** RECORDS frames sent on the backup link so far. */
  linkFrames: number;
  /** The lease's last tracker error (a refusal counts); shown when no call went unanswered. */
  trackerError: string | null;
  /** The tracker as every call found it (issue 11). */
  tracker?: ReturnType<TrackerHealth["view"]>;
  trackerUrl?: string;
  /** Every tracker of the agent's list (issue 12), with which one is current. */
  trackers?: TargetView[];
  backupUrl?: string;
  /** When the agent started, and now (epoch ms). */
  startedAt?: number;
  now?: number;
  volumes: readonly HostVolume[];
  isRegistered(name: string): boolean;
}

export function statusView(s: StatusInputs): HostStatus {
  const doc = statusDocument(s);
  return { ...doc, volumes: doc.volumes.map((v) => ({ ...v, resync: withIsoTimes(v.resync) })) };
}

function statusDocument(s: StatusInputs): HostStatus {
  const mode: HostMode = !s.forking
    ? "pass-through"
    : s.backup.state === "online"
    ? "mirroring"
    : "tracking";
  return {
    host: s.hostId,
    url: s.advertiseUrl,
    mode,
    ack: s.ack,
    unhardened: s.unhardened,
    components: {
      backup: {
        ...s.backup,
        sinceIso: isoTime(s.backup.since),
        lastErrorAtIso: isoTime(s.backup.lastErrorAt),
        ...(s.backupUrl === undefined ? {} : { url: s.backupUrl }),
      },
      tracker: trackerRow(s),
    },
    volumes: s.volumes.map((v) => ({
      name: v.name,
      path: v.path,
      sizeBytes: v.sizeBytes,
      registered: s.isRegistered(v.name),
      leaseEpoch: v.lease.leaseEpoch ?? null,
      fenced: v.lease.fenced !== null,
      fencedReason: v.lease.fenced?.reason ?? null,
      fencedHolder: v.lease.fenced?.holder ?? null,
      writes: v.fork?.counters ?? null,
      primary: {
        errors: v.primary.errors,
        lastError: v.primary.lastError,
        lastErrorAt: v.primary.lastErrorAt,
        lastErrorAtIso: isoTime(v.primary.lastErrorAt),
      },
      backupBatches: s.linkFrames + v.batcher.batchesSent,
      trackerCommands: v.marker.commandsSent,
      trackerCacheHits: v.marker.cacheHits,
      cachedMarkedRegions: v.marker.cache.size,
      activity: v.activity
        ? {
          unitBytes: v.activity.unitBytes,
          hotUnits: v.activity.hot.size,
          unitsMax: v.activity.unitsMax,
          commandsSent: v.activity.commandsSent,
          retiresSent: v.activity.retiresSent,
          regionsRetired: v.activity.regionsRetired,
          taintedRegions: v.activity.tainted.size,
        }
        : null,
      promoted: v.promoted,
      stageOpen: v.stageOpen,
      resync: latestResync(v).progress,
      mirror: v.mirror,
      cycle: v.cycles?.progress ?? null,
      trust: v.trust.trust,
      trustReason: v.trust.trustReason,
      generations: {
        primary: v.trust.sidecar.primaryGeneration,
        tracker: v.trust.sidecar.trackerGeneration,
        markSeq: v.trust.sidecar.markSeq,
        secondary: v.trust.sidecar.secondaryGeneration,
      },
    })),
    instance: s.instance,
    ...(s.startedAt === undefined
      ? {}
      : { startedAt: s.startedAt, startedAtIso: isoTime(s.startedAt) }),
    ...(s.now === undefined ? {} : { now: s.now, nowIso: isoTime(s.now) }),
  };
}

/** The tracker's row: health from every call when known, else the lease's last error alone. */
function trackerRow(s: StatusInputs): HostStatus["components"]["tracker"] {
  if (!s.tracker) return { lastError: s.trackerError };
  const t = s.tracker;
  return {
    name: "tracker",
    state: t.state,
    since: t.since,
    sinceIso: isoTime(t.since),
    lastError: t.lastError ?? s.trackerError,
    lastErrorAt: t.lastErrorAt,
    lastErrorAtIso: isoTime(t.lastErrorAt),
    failures: t.failures,
    ...(s.trackerUrl === undefined ? {} : { url: s.trackerUrl }),
    ...(s.trackers === undefined ? {} : {
      current: s.trackers.find((t) => t.current)?.url ?? null,
      urls: s.trackers.map((t) => ({
        url: t.url,
        current: t.current,
        state: t.state,
        since: t.since,
        sinceIso: isoTime(t.since),
        lastError: t.lastError,
        lastErrorAt: t.lastErrorAt,
        lastErrorAtIso: isoTime(t.lastErrorAt),
        failures: t.failures,
      })),
    }),
  };
}

function withIsoTimes(p: ResyncProgress): ResyncProgress {
  return { ...p, startedAtIso: isoTime(p.startedAt), finishedAtIso: isoTime(p.finishedAt) };
}
