/**
 * The zod schemas of every control message, shared by the services (validation at the edge) and
 * their typed clients. Data never travels as JSON: writes are `application/octet-stream`.
 */
import { z } from "zod";
import { regionBytesDefault, regionBytesMax, regionBytesMin } from "./extent.ts";

/** Volume and host names: they may become file names, so nothing else is accepted. */
export const namePattern = /^[a-z0-9][a-z0-9._-]{0,63}$/;
export const volumeName = z.string().regex(
  namePattern,
  "Must match ^[a-z0-9][a-z0-9._-]{0,63}$ (lower-case letters, digits, '.', '_', '-')",
);
export const hostId = volumeName;

/** Checks a name outside a zod schema (e.g. a path parameter); throws naming the value. */
export function checkName(kind: "Volume" | "Host", name: string): string {
  if (!namePattern.test(name) || name === "." || name === "..") {
    throw new RangeError(
      `${kind} name "${name}" is invalid: it must match ^[a-z0-9][a-z0-9._-]{0,63}$`,
    );
  }
  return name;
}

const byteCount = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

/** The `{name}` path parameter of every `/v1/volumes/{name}...` route, validated like a body. */
export const volumeParams = z.object({ name: volumeName });
export type VolumeParams = z.infer<typeof volumeParams>;

/** Most extents one tracking command may carry. */
export const trackExtentsMax = 4096;

/** A lease epoch (tracker/registration.ts raises it by one per change of owning instance). */
export const leaseEpoch = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

/** A host agent instance: a random id per process (host/main.ts), never reused. */
export const instanceId = z.string().regex(
  /^[A-Za-z0-9._:-]{1,64}$/,
  "Must be 1-64 letters, digits, '.', '_', ':' or '-'",
);

/**
 * The lease a host agent claims when it changes tracking state (marks, activity, retire, clear):
 * the tracker refuses it with 409 "fenced" once another instance holds the volume or its lease
 * epoch moved past this one (tracker/lease_fence.ts). Optional for older tools.
 */
export const leaseClaim = {
  /** The sending agent's instance (`ownerInstance` of its registration). */
  instance: instanceId.optional(),
  /** The lease epoch the tracker answered its registration with. */
  leaseEpoch: leaseEpoch.optional(),
};

export const extent = z.object({
  offset: byteCount,
  length: z.number().int().positive().max(Number.MAX_SAFE_INTEGER),
});

/** Milliseconds since the epoch, or an ISO-8601 date string. */
export const timeMs = z.union([
  z.number().int().nonnegative(),
  // Bounded like the number form: a long digit string must not become an unsafe integer.
  z.string().regex(/^\d+$/).transform(Number).pipe(z.number().int().nonnegative()),
  z.iso.datetime({ offset: true }).transform((s) => Date.parse(s)),
]);

/** `POST /v1/track`: mark every region the extents touch. */
export const trackRequest = z.object({
  volume: volumeName,
  host: hostId,
  extents: z.array(extent).min(1).max(trackExtentsMax),
  /** When the host saw the write; the tracker's clock is used when absent. */
  time: z.number().int().nonnegative().optional(),
  ...leaseClaim,
});
export type TrackRequest = z.infer<typeof trackRequest>;

export const trackResponse = z.object({
  volume: z.string(),
  regionsMarked: z.number(),
  regionsNew: z.number(),
  /** The tracker record's generation and mark sequence after this commit (see `volumeInfo`). */
  generation: z.string().optional(),
  markSeq: z.number().optional(),
});
export type TrackResponse = z.infer<typeof trackResponse>;

/** `PUT /v1/volumes/{name}`: register a volume and its owning host agent. */
export const volumeRegistration = z.object({
  sizeBytes: z.number().int().positive().max(Number.MAX_SAFE_INTEGER),
  regionBytes: z.number().int().min(regionBytesMin).max(regionBytesMax).refine(
    (n) => Number.isInteger(Math.log2(n)),
    "Must be a power of two",
  ).default(regionBytesDefault),
  ownerHost: hostId,
  /** Where the tracker reaches the owner; like the `--*-url` flags, http(s) only. */
  ownerUrl: z.url({ protocol: /^https?$/ }),
  /** How long the owner's lease lasts without renewal. */
  leaseMs: z.number().int().min(1000).max(24 * 3600 * 1000).default(30_000),
  /** Take the lease even if another host holds it (used by reconstruct for a dead host). */
  takeover: z.boolean().default(false),
  /**
   * A random id of the registering agent process: another instance is refused while the lease
   * runs, whatever host id it uses (tracker/registration.ts). Absent (older tools): the host id.
   */
  ownerInstance: instanceId.optional(),
  /**
   * What the agent serves, e.g. "HOSTNAME:/real/path/of/primary.img": a new instance with the same
   * host id and the same primary is a restart of the same agent (it holds an exclusive lock on
   * the file) and takes the lease back at once.
   */
  ownerPrimary: z.string().min(1).max(8192).optional(),
  /**
   * The highest lease epoch the agent has seen for the volume; the tracker never answers a lower
   * one, so a tracker that lost its record does not move the epoch back.
   */
  leaseEpoch: leaseEpoch.optional(),
});
export type VolumeRegistration = z.input<typeof volumeRegistration>;

export const volumeInfo = z.object({
  name: z.string(),
  sizeBytes: z.number(),
  regionBytes: z.number(),
  ownerHost: z.string(),
  ownerUrl: z.string(),
  leaseExpiresAt: z.number(),
  /** `leaseExpiresAt` as ISO 8601 (issue 11); absent from older trackers. */
  leaseExpiresAtIso: z.string().optional(),
  /** The owning agent instance (absent for records of older tools). */
  ownerInstance: z.string().optional(),
  /** Raised by one per change of owning instance; the host sends it with marks and to the backup. */
  leaseEpoch: z.number().optional(),
  dirtyRegions: z.number(),
  dirtyBytes: z.number(),
  oldestMarkAt: z.number().nullable(),
  /** `oldestMarkAt` as ISO 8601 (issue 11); absent from older trackers. */
  oldestMarkAtIso: z.string().nullable().optional(),
  /** Activity regions of every host together (kept apart from dirty regions). */
  activityRegions: z.number(),
  /** Activity regions by host; hosts without any are absent. */
  activityByHost: z.record(z.string(), z.number()),
  /**
   * A random UUID made when the tracker created this record: a host that recorded another one
   * knows the record was lost or is another tracker's (issue 9). Optional: older trackers lack it.
   */
  generation: z.string().optional(),
  /**
   * The volume's mark sequence: raised by every committed mark, never lowered. A value below one
   * a host saw before means the KV is an older copy. Optional: older trackers lack it.
   */
  markSeq: z.number().optional(),
});
export type VolumeInfo = z.infer<typeof volumeInfo>;

/**
 * Whether the tracker's store answers, from the probe the tracker runs in the background
 * (tracker/store/store_probe.ts): `checkedAt` is when the latest probe ended; etcd lists each
 * endpoint (ok when it answered a linearizable read in time).
 */
export const storeHealth = z.object({
  kind: z.enum(["kv", "etcd"]),
  ok: z.boolean(),
  checkedAt: z.number(),
  checkedAtIso: z.string(),
  error: z.string().optional(),
  endpoints: z.array(z.object({
    url: z.string(),
    ok: z.boolean(),
    error: z.string().optional(),
  })).optional(),
});
export type StoreHealth = z.infer<typeof storeHealth>;

/** The tracker's `GET /v1/status` (issue 11): since when it runs, how much it holds dirty. */
export const trackerStatus = z.object({
  service: z.literal("tracker"),
  startedAt: z.number(),
  startedAtIso: z.string(),
  /** The tracker's clock when it answered (ages of marks are measured against it). */
  now: z.number(),
  nowIso: z.string(),
  volumes: z.number(),
  dirtyVolumes: z.number(),
  dirtyBytes: z.number(),
  /**
   * When the volume counts above were read from the store (epoch ms): older than `now` when the
   * store is not ok or did not list in time (the counts are then the last ones read), null when
   * never read. Optional: older trackers lack it.
   */
  volumesAt: z.number().nullable().optional(),
  volumesAtIso: z.string().nullable().optional(),
  /**
   * Whether its store answers (the latest background probe); absent from older trackers and from
   * a tracker that runs no probe (in-process tests).
   */
  store: storeHealth.optional(),
});
export type TrackerStatus = z.infer<typeof trackerStatus>;

/** `GET /v1/volumes/{name}/log` query. */
export const logQuery = z.object({
  since: timeMs.optional(),
  until: timeMs.optional(),
  cursor: z.string().regex(/^\d+:\d+$/).optional(),
  limit: z.coerce.number().int().min(1).max(100_000).default(10_000),
});

export const logExtent = z.object({
  offset: z.number(),
  length: z.number(),
  firstMarkedAt: z.number(),
  lastMarkedAt: z.number(),
});
export type LogExtent = z.infer<typeof logExtent>;

export const logPage = z.object({
  volume: z.string(),
  regionBytes: z.number(),
  sizeBytes: z.number(),
  /** Names the tracking state this log reflects; pass it to clear. */
  token: z.string(),
  extents: z.array(logExtent),
  /** Pass as `cursor` for the next page; null on the last page. */
  nextCursor: z.string().nullable(),
});
export type LogPage = z.infer<typeof logPage>;

/** `POST /v1/volumes/{name}/clear`. */
export const clearRequest = z.object({
  token: z.string().regex(/^\d+$/, "Must be a token returned by the log"),
  /** Clear only regions inside these extents; all dirty regions when absent. */
  extents: z.array(extent).max(trackExtentsMax).optional(),
  ...leaseClaim,
});
export type ClearRequest = z.infer<typeof clearRequest>;

export const clearResponse = z.object({
  regionsCleared: z.number(),
  /** Regions in the request that were marked again after the token and stay dirty. */
  regionsKept: z.number(),
});
export type ClearResponse = z.infer<typeof clearResponse>;

/**
 * `POST /v1/activity`: a host records activity marks (the predictive record of seeds 000/004)
 * for every region the extents touch, before it first writes there while the backup is online.
 * They are kept apart from dirty marks until the host (or reconstruct) promotes them.
 */
export const activityRequest = z.object({
  volume: volumeName,
  host: hostId,
  extents: z.array(extent).min(1).max(trackExtentsMax),
  /** When the host recorded it; accepted for symmetry with tracking, not stored. */
  time: z.number().int().nonnegative().optional(),
  ...leaseClaim,
});
export type ActivityRequest = z.infer<typeof activityRequest>;

export const activityResponse = z.object({
  volume: z.string(),
  host: z.string(),
  /** Regions the extents touch. */
  regionsMarked: z.number(),
  /** Of those, regions that held no activity mark of this host before. */
  regionsNew: z.number(),
});
export type ActivityResponse = z.infer<typeof activityResponse>;

/** `POST /v1/volumes/{name}/activity/retire`: clear a host's activity marks of these regions. */
export const activityRetireRequest = z.object({
  host: hostId,
  extents: z.array(extent).min(1).max(trackExtentsMax),
  ...leaseClaim,
});
export type ActivityRetireRequest = z.infer<typeof activityRetireRequest>;

export const activityRetireResponse = z.object({
  /** Regions whose activity mark was cleared (those without one are not counted). */
  regionsRetired: z.number(),
});
export type ActivityRetireResponse = z.infer<typeof activityRetireResponse>;

/** `POST /v1/volumes/{name}/activity/promote`: turn all of a host's activity marks into dirty marks. */
export const activityPromoteRequest = z.object({ host: hostId });
export type ActivityPromoteRequest = z.infer<typeof activityPromoteRequest>;

export const activityPromoteResponse = z.object({
  /** Activity regions now dirty (marked with a sequence newer than any token issued before). */
  regionsPromoted: z.number(),
});
export type ActivityPromoteResponse = z.infer<typeof activityPromoteResponse>;

/** `GET /v1/volumes/{name}/activity` query: one host's activity, or every host's when absent. */
export const activityQuery = z.object({
  host: hostId.optional(),
  /** "host:region", from the previous page's `nextCursor`. */
  cursor: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}:\d+$/, "Must be a nextCursor").optional(),
  limit: z.coerce.number().int().min(1).max(100_000).default(10_000),
});

export const activityExtent = z.object({
  offset: z.number(),
  length: z.number(),
  host: z.string(),
});
export type ActivityExtent = z.infer<typeof activityExtent>;

export const activityPage = z.object({
  volume: z.string(),
  regionBytes: z.number(),
  sizeBytes: z.number(),
  /** Activity regions merged into extents, by host, then offset. */
  extents: z.array(activityExtent),
  /** Pass as `cursor` for the next page; null on the last page. */
  nextCursor: z.string().nullable(),
});
export type ActivityPage = z.infer<typeof activityPage>;

/** `GET /v1/status` of the backup service. */
export const backupStatus = z.object({
  /**
   * `degraded`: the backup answers but cannot take writes now (journal full, a journal write or
   * sync failed); `reason` says which. Hosts treat it like offline and probe with backoff.
   */
  state: z.enum(["ok", "degraded"]),
  reason: z.string().nullable(),
  /** The applier's last failure (e.g. a secondary's disk is full), null while it applies. */
  applierError: z.string().nullable(),
  journalBytesPending: z.number(),
  journalBytesMax: z.number(),
  recordsAcknowledged: z.number(),
  recordsApplied: z.number(),
  volumes: z.array(z.string()),
  /** Issue 10: each volume's open resync cycle, staged and not yet applied to its secondary. */
  openCycles: z.array(z.object({
    volume: z.string(),
    stagedBytes: z.number(),
    stagedRecords: z.number(),
    regions: z.number(),
  })).optional(),
  /** Cycles committed, and cycles that outgrew their stage, since the backup started. */
  cyclesCommitted: z.number().optional(),
  cyclesSpilled: z.number().optional(),
  /**
   * Issue 11: per registered volume, what is journaled and not yet applied and synced to its
   * secondary (bytes, records, the oldest one's admission time and age in seconds). Absent from
   * older backups.
   */
  lag: z.array(z.object({
    volume: z.string(),
    bytes: z.number(),
    records: z.number(),
    oldestAt: z.number().nullable(),
    oldestAtIso: z.string().nullable(),
    seconds: z.number(),
  })).optional(),
  /** When this backup process started (epoch ms, and ISO 8601). Absent from older backups. */
  startedAt: z.number().optional(),
  startedAtIso: z.string().optional(),
});
export type BackupStatus = z.infer<typeof backupStatus>;

/** Answer to a backup write batch. */
export const writeBatchResponse = z.object({
  records: z.number(),
  bytes: z.number(),
});
export type WriteBatchResponse = z.infer<typeof writeBatchResponse>;
