/**
 * The wire types of the host agent's HTTP responses (status document, resync progress), as zod
 * schemas: the agent builds them, its typed client and reconstruct parse them.
 */
import { z } from "zod";

const timestamp = z.number();

export const resyncState = z.enum(["idle", "running", "done", "failed"]);
export type ResyncState = z.infer<typeof resyncState>;

/** Progress of the latest resync of a volume, as `GET /v1/volumes/{name}/resync` shows it. */
export const resyncProgress = z.object({
  volume: z.string(),
  state: resyncState,
  startedAt: timestamp.nullable(),
  finishedAt: timestamp.nullable(),
  regionsTotal: z.number(),
  regionsDone: z.number(),
  bytesTotal: z.number(),
  bytesDone: z.number(),
  /** Regions marked again during the copy; they stay dirty for the next resync. */
  regionsKept: z.number(),
  bytesPerSec: z.number(),
  etaSeconds: z.number().nullable(),
  error: z.string().nullable(),
});
export type ResyncProgress = z.infer<typeof resyncProgress>;

export const componentState = z.enum(["online", "offline", "probing"]);
export type ComponentState = z.infer<typeof componentState>;

/** One component's row of the status table. */
export const componentStatusView = z.object({
  name: z.string(),
  state: componentState,
  since: timestamp,
  lastError: z.string().nullable(),
  lastErrorAt: timestamp.nullable(),
  probes: z.number(),
});
export type ComponentStatusView = z.infer<typeof componentStatusView>;

/** The host's mode: forking to the backup, tracking only (backup away), or no fork at all. */
export const hostMode = z.enum(["mirroring", "tracking", "pass-through"]);
export type HostMode = z.infer<typeof hostMode>;

export const activityView = z.object({
  unitBytes: z.number(),
  hotUnits: z.number(),
  unitsMax: z.number(),
  commandsSent: z.number(),
  retiresSent: z.number(),
  regionsRetired: z.number(),
  taintedRegions: z.number(),
});

export const hostVolumeView = z.object({
  name: z.string(),
  path: z.string(),
  sizeBytes: z.number(),
  registered: z.boolean(),
  writes: z.object({ viaBackup: z.number(), viaTracker: z.number(), failed: z.number() })
    .nullable(),
  /** RECORDS frames sent on the backup link (the link carries every volume of the host). */
  backupBatches: z.number(),
  trackerCommands: z.number(),
  trackerCacheHits: z.number(),
  cachedMarkedRegions: z.number(),
  activity: activityView.nullable(),
  promoted: z.boolean(),
  resync: resyncProgress,
  /** The tracker's lease epoch this agent holds the volume with; null before registration. */
  leaseEpoch: z.number().nullable(),
  /**
   * True once another agent instance took the volume over (the tracker or backup refused this
   * one as fenced): every write to it fails; it does not resume by itself.
   */
  fenced: z.boolean(),
  /** The refusal that fenced it, naming the new holder when the refusal did. */
  fencedReason: z.string().nullable(),
  /** Who holds the volume now (the tracker's record), once looked up after the fence. */
  fencedHolder: z.string().nullable(),
});
export type HostVolumeView = z.infer<typeof hostVolumeView>;

/** `GET /v1/status` of the host agent. */
export const hostStatus = z.object({
  host: z.string(),
  url: z.string(),
  mode: hostMode,
  /** When a mirror write counts as acknowledged: journal synced, or received (seed 002). */
  ack: z.enum(["durable", "received"]),
  /** `received` mode: regions a lost link may have lost, not yet marked / marked so far. */
  unhardened: z.object({ uncoveredRegions: z.number(), regionsCovered: z.number() }),
  components: z.object({
    backup: componentStatusView,
    tracker: z.object({ lastError: z.string().nullable() }),
  }),
  volumes: z.array(hostVolumeView),
  /** This agent process's lease identity (random per process). */
  instance: z.string(),
});
export type HostStatus = z.infer<typeof hostStatus>;
