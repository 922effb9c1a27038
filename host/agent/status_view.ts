/** Builds the host agent's `/v1/status` document from its volumes, backup link and lease. */
import type { ComponentStatusView, HostMode, HostStatus } from "../../src/host_schemas.ts";
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
  trackerError: string | null;
  volumes: readonly HostVolume[];
  isRegistered(name: string): boolean;
}

export function statusView(s: StatusInputs): HostStatus {
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
      backup: s.backup,
      tracker: { lastError: s.trackerError },
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
  };
}
