/**
 * The wire types of the host agent's HTTP responses (status document, resync progress), as zod
 * schemas: the agent builds them, its typed client and reconstruct parse them.
 */
import { z } from "zod";

const timestamp = z.number();

export const resyncState = z.enum(["idle", "running", "done", "failed"]);
export type ResyncState = z.infer<typeof resyncState>;

/** How a resync finds what to copy: the tracker's marks (plain) or region checksums. */
export const resyncMode = z.enum(["plain", "checksum"]);
export type ResyncMode = z.infer<typeof resyncMode>;

/** Optional body of `POST /v1/volumes/{name}/resync` (no body: plain). */

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
  /**
   * `plain` copies the regions the tracker holds marked; `checksum` compares every region's
   * SHA-256 with the backup's and ships only those that differ. Absent from older agents: plain.
   */
  mode: resyncMode.optional(),
  /** Checksum resync: regions whose digests were compared with the backup's. */
  regionsCompared: z.number().optional(),
  /** Checksum resync: regions that differed and were shipped to the backup. */
  regionsShipped: z.number().optional(),
  /** Checksum resync: regions equal on both sides, not shipped. */
  regionsSkipped: z.number().optional(),
  /** Checksum resync: bytes of the regions shipped. */
  bytesShipped: z.number().optional(),
  /**
   * Issue 10, the resync's cycle at the backup: `opening`, `open` (copies and writes are staged),
   * `committing`, `committed` (durable: the secondary is the primary as of the commit),
   * `abandoned` (failed before the commit: the secondary stays at its previous point in time),
   * `unstaged` (--unstaged-resync: copies go straight into the secondary). Absent from older agents.
   */
  cycle: z.enum(["opening", "open", "committing", "committed", "abandoned", "unstaged"])
    .optional(),
  /** `startedAt` / `finishedAt` as ISO 8601, in the host's status document (issue 11). */
  startedAtIso: z.string().nullable().optional(),
  finishedAtIso: z.string().nullable().optional(),
});
export type ResyncProgress = z.infer<typeof resyncProgress>;

/**
 * `POST /v1/volumes/{name}/resync` body, optional (an empty body is a plain resync): `mode`
 * "checksum" compares every region (issue 9); `discardSecondary` with it resolves a split brain by
 * keeping this primary.
 */
export const resyncRequest = z.object({
  mode: resyncMode.optional(),
  discardSecondary: z.boolean().optional(),
}).strict();
export type ResyncRequestBody = z.infer<typeof resyncRequest>;

/**
 * Progress of the latest online verify of a volume (`GET /v1/volumes/{name}/verify`): the same
 * rate and ETA fields as a resync's, and what the comparison found. A verify ships nothing: the
 * differing extents are marked dirty at the tracker for the next reconstruct.
 */
export const verifyProgress = resyncProgress.pick({
  volume: true,
  state: true,
  startedAt: true,
  finishedAt: true,
  regionsTotal: true,
  regionsDone: true,
  bytesTotal: true,
  bytesDone: true,
  bytesPerSec: true,
  etaSeconds: true,
  error: true,
}).extend({
  /** Regions whose digests were compared with the backup's. */
  regionsCompared: z.number(),
  /** Regions that differed at first sight and were compared again under their range lock. */
  regionsRechecked: z.number(),
  /** Regions that still differed under the lock: real differences, marked at the tracker. */
  regionsDiffering: z.number(),
  bytesDiffering: z.number(),
  /** Differing extents found so far (merged); `extents` lists the first `verifyExtentsListedMax`. */
  extentsTotal: z.number(),
  extents: z.array(z.object({ offset: z.number(), length: z.number() })),
});
export type VerifyProgress = z.infer<typeof verifyProgress>;

/**
 * How a volume is mirrored (issue 10): `journal` (default) sends every write to the backup's
 * journal before the primary; `cycles` sends none: writes are marked at the tracker, and every
 * interval one freeze-and-copy cycle ships the marked regions as of its freeze (host/cycle/).
 */
export const mirrorMode = z.enum(["journal", "cycles"]);
export type MirrorMode = z.infer<typeof mirrorMode>;

/**
 * Progress of a cycle-mode volume's latest cycle (`GET /v1/volumes/{name}/cycle`, and `cycle` in
 * the status): the resync progress fields (the regions and bytes of the cycle's frozen set; `cycle`
 * is the stage at the backup) and the schedule around it.
 */
export const cycleProgress = resyncProgress.pick({
  volume: true,
  state: true,
  startedAt: true,
  finishedAt: true,
  regionsTotal: true,
  regionsDone: true,
  bytesTotal: true,
  bytesDone: true,
  regionsKept: true,
  bytesPerSec: true,
  etaSeconds: true,
  error: true,
  cycle: true,
  startedAtIso: true,
  finishedAtIso: true,
}).extend({
  /** This cycle's number since the agent started (1 for the first; 0: none yet). */
  cycleSeq: z.number(),
  /** The configured interval between cycle starts (`--cycle-interval`). */
  intervalMs: z.number(),
  /** Cycles committed since the agent started. */
  cyclesCommitted: z.number(),
  /** When the last commit became durable at the backup; null before the first. */
  lastCommittedAt: timestamp.nullable(),
  /**
   * The point in time the secondary holds as far as this agent knows: the freeze of the last
   * committed cycle (or of a cycle that found nothing marked); null before the first.
   */
  pointInTime: timestamp.nullable(),
  /** When the scheduler looks next (null once stopped). */
  nextAt: timestamp.nullable(),
  /** Why the last scheduled cycle did not start (backup offline, trust, ...); null when it did. */
  waiting: z.string().nullable(),
  /** Regions of this cycle shipped by a write before it overwrote them (copy-before-write). */
  regionsCopiedBeforeWrite: z.number(),
  /** How long this cycle's freeze held writes (the whole-volume lock while the log was read). */
  freezeMs: z.number(),
  /** Bytes shipped to the backup by every cycle since the agent started (walker and copy-before-write). */
  bytesShippedTotal: z.number(),
  /** ISO 8601 twins of the times above (issue 11). */
  lastCommittedAtIso: z.string().nullable().optional(),
  pointInTimeIso: z.string().nullable().optional(),
  nextAtIso: z.string().nullable().optional(),
});
export type CycleProgress = z.infer<typeof cycleProgress>;

/**
 * `degraded`: the component answers but cannot take writes (the backup's journal is full, or a
 * journal write failed); like `offline`, writes go to the tracker and the component is probed.
 */
export const componentState = z.enum(["online", "offline", "probing", "degraded"]);
export type ComponentState = z.infer<typeof componentState>;

/** One component's row of the status table. */
export const componentStatusView = z.object({
  name: z.string(),
  state: componentState,
  since: timestamp,
  lastError: z.string().nullable(),
  lastErrorAt: timestamp.nullable(),
  probes: z.number(),
  /** `since` and `lastErrorAt` as ISO 8601 (issue 11); absent from older agents. */
  sinceIso: z.string().optional(),
  lastErrorAtIso: z.string().nullable().optional(),
  /** Where the agent reaches the component (its HTTP API); absent from older agents. */
  url: z.string().optional(),
});
export type ComponentStatusView = z.infer<typeof componentStatusView>;

/** One tracker of a host agent's failover list (issue 12; src/failover.ts `TargetView`). */
export const trackerTargetView = z.object({
  url: z.string(),
  current: z.boolean(),
  state: z.enum(["online", "offline", "probing"]),
  since: timestamp,
  sinceIso: z.string().nullable(),
  lastError: z.string().nullable(),
  lastErrorAt: timestamp.nullable(),
  lastErrorAtIso: z.string().nullable(),
  failures: z.number(),
});

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

/**
 * How far a volume's mirror can be trusted (issue 9): "trusted"; "checksum-resync-needed" (the
 * tracker's record was lost or is an older copy, or the secondary was replaced: only
 * `reconstruct --checksum` repairs it); "split-brain" (the secondary was written by another
 * primary: not mirrored, nothing resynced until `--checksum --discard-secondary`).
 */
export const trustView = z.enum(["trusted", "checksum-resync-needed", "split-brain"]);
export type TrustView = z.infer<typeof trustView>;

/** The generations a volume's primary recorded (its sidecar). */
export const generationsView = z.object({
  primary: z.string(),
  tracker: z.string().nullable(),
  markSeq: z.number(),
  secondary: z.string().nullable(),
});

export const hostVolumeView = z.object({
  name: z.string(),
  path: z.string(),
  sizeBytes: z.number(),
  registered: z.boolean(),
  writes: z.object({
    viaBackup: z.number(),
    viaTracker: z.number(),
    failed: z.number(),
    /** Made safe at the backup or tracker, then refused by the primary (ENOSPC, EIO). */
    primaryFailed: z.number(),
  }).nullable(),
  /** Writes, zeroings and flushes the primary image refused since start, and the last one. */
  primary: z.object({
    errors: z.number(),
    lastError: z.string().nullable(),
    lastErrorAt: timestamp.nullable(),
    lastErrorAtIso: z.string().nullable().optional(),
  }),
  /** RECORDS frames sent on the backup link (the link carries every volume of the host). */
  backupBatches: z.number(),
  trackerCommands: z.number(),
  trackerCacheHits: z.number(),
  cachedMarkedRegions: z.number(),
  activity: activityView.nullable(),
  promoted: z.boolean(),
  /**
   * A cycle opened at the backup's return is still open (issue 10): the secondary is held at its
   * last point until a resync commits, even for a clean volume. Absent in older documents.
   */
  stageOpen: z.boolean().optional(),
  resync: resyncProgress,
  /** How the volume is mirrored (issue 10); absent (older agents, documents built elsewhere): journal. */
  mirror: mirrorMode.optional(),
  /** Cycle mode: the latest cycle and the schedule; null (or absent) in journal mode. */
  cycle: cycleProgress.nullable().optional(),
  /** Defaults keep the schema reading agents from before issue 9. */
  trust: trustView.default("trusted"),
  /** What was found and what to run; null while trusted. */
  trustReason: z.string().nullable().default(null),
  generations: generationsView.optional(),
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
    /**
     * The tracker as the agent's calls found it (host/agent/tracker_health.ts): `lastError` is the
     * last call that got no answer (kept after recovery, like the backup's); the rest is issue 11
     * and absent from older agents.
     */
    tracker: z.object({
      lastError: z.string().nullable(),
      name: z.literal("tracker").optional(),
      state: componentState.optional(),
      since: timestamp.optional(),
      sinceIso: z.string().optional(),
      lastErrorAt: timestamp.nullable().optional(),
      lastErrorAtIso: z.string().nullable().optional(),
      /** Calls that got no answer since the agent started. */
      failures: z.number().optional(),
      /** The tracker calls go to now (with several: the current one of `urls`). */
      url: z.string().optional(),
      /** Issue 12: the current tracker of the agent's `--tracker` list; absent from older agents. */
      current: z.string().nullable().optional(),
      /**
       * Issue 12: every tracker of the list, in order, as the agent's calls and its probes of the
       * standbys (every 5 s) found it; absent from older agents.
       */
      urls: z.array(trackerTargetView).optional(),
    }),
  }),
  volumes: z.array(hostVolumeView),
  /** This agent process's lease identity (random per process). */
  instance: z.string(),
  /** When this agent started and its clock when it answered (epoch ms and ISO 8601; issue 11). */
  startedAt: timestamp.optional(),
  startedAtIso: z.string().optional(),
  now: timestamp.optional(),
  nowIso: z.string().optional(),
});
export type HostStatus = z.infer<typeof hostStatus>;
