/**
 * The backup's own control messages (the shared ones, `backupStatus` and `writeBatchResponse`,
 * live in src/schemas.ts). Data never travels as JSON: batches are `application/octet-stream`.
 */
import { z } from "zod";

/** `PUT /v1/volumes/{name}`: register a secondary volume of a fixed size. */
export const backupVolumeRegistration = z.object({
  sizeBytes: z.number().int().positive().max(Number.MAX_SAFE_INTEGER),
  /** The host's current epoch: batches of older epochs are refused from now on (epoch_fence.ts). */
  epoch: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).optional(),
  /**
   * The registering primary's generation (issue 9): recorded as the secondary's writer when it
   * has none; another primary's registration leaves the writer as it is (split brain, seen by
   * the host in the answer).
   */
  primaryGeneration: z.uuid().optional(),
  /**
   * With `primaryGeneration`: make it the writer even though another primary wrote last
   * (`reconstruct --checksum --discard-secondary`: this primary wins).
   */
  adoptPrimary: z.boolean().optional(),
  /**
   * The tracker's lease epoch of the volume, as the registering host holds it: registrations and
   * batches of an older one are refused as fenced from now on (epoch_fence.ts).
   */
  leaseEpoch: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).optional(),
}).refine((r) => !r.adoptPrimary || r.primaryGeneration !== undefined, {
  message: "adoptPrimary needs primaryGeneration",
  path: ["adoptPrimary"],
});
/** Body of a backup volume registration. */
export type BackupVolumeRegistration = z.infer<typeof backupVolumeRegistration>;

/**
 * Answer to `PUT /v1/volumes/{name}`: the volume, its generation and the primary generation that
 * last wrote it (null: none registered with one yet).
 */
export const backupVolumeRegistered = z.object({
  name: z.string(),
  sizeBytes: z.number(),
  generation: z.string().optional(),
  writerGeneration: z.string().nullable().optional(),
  /** The volume's fence after this registration (epoch_fence.ts). */
  epoch: z.number().optional(),
  leaseEpoch: z.number().optional(),
});
export type BackupVolumeRegistered = z.infer<typeof backupVolumeRegistered>;

/** One registered secondary volume. */
export const backupVolume = z.object({
  name: z.string(),
  sizeBytes: z.number(),
  /** The volume's fence, when one was registered (epoch_fence.ts). */
  epoch: z.number().optional(),
  leaseEpoch: z.number().optional(),
});
export type BackupVolume = z.infer<typeof backupVolume>;

/** `GET /v1/volumes`. */
export const backupVolumeList = z.object({ volumes: z.array(backupVolume) });
export type BackupVolumeList = z.infer<typeof backupVolumeList>;

/** `POST /v1/flush`: everything acknowledged before the call is applied and synced. */
export const flushResponse = z.object({ recordsApplied: z.number() });
export type FlushResponse = z.infer<typeof flushResponse>;

/** Header carrying the sender's epoch with a write batch (see epoch_fence.ts). */
export const epochHeader = "x-trackmirror-epoch";
/** Header carrying the sender's lease epoch with a write batch (see epoch_fence.ts). */
export const leaseEpochHeader = "x-trackmirror-lease-epoch";

/** One committed point in time of a secondary (issue 10; backup/cycle_stage.ts `CyclePoint`). */
export const cyclePointView = z.object({
  id: z.string(),
  /** When the commit became durable, ms since the epoch. */
  committedAt: z.number(),
  bytes: z.number(),
  records: z.number(),
  /** The commit marker's place in the journal (absent from points made without positions). */
  journalPos: z.object({ segment: z.number(), offset: z.number() }).optional(),
  regions: z.number(),
});

/** An open cycle of one volume: staged, not yet in its secondary. */
export const openCycleView = z.object({
  volume: z.string(),
  stagedBytes: z.number(),
  stagedRecords: z.number(),
  regions: z.number(),
});

/** `GET /v1/volumes/{name}/points`. */
export const pointsResponse = z.object({
  volume: z.string(),
  /** The last `pointsKeptMax`, oldest first; the secondary holds the newest. */
  points: z.array(cyclePointView),
  openCycle: openCycleView.nullable(),
});

/** `GET /v1/link`: where the link server listens ("tcp://host:port", socket paths). */
export const linkResponse = z.object({ addresses: z.array(z.string()) });

/** The value of an epoch header of a write batch: a whole number. */
export const epochHeaderValue = z.string().regex(/^\d{1,16}$/);
