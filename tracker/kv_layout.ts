/**
 * The tracker's Deno KV layout: every key it writes, and the registration record.
 *
 *   ["volume", name]          → VolumeRecord
 *   ["seq", name]             → number: the volume's mark sequence, written with each mark commit
 *   ["dirty", name, segment]  → Uint8Array(segmentBytes): the segment's dirty bits
 *   ["marked", name, segment] → Uint8Array: packed mark record (see segment_state.ts)
 *   ["activity", name, host, segment] → Uint8Array(segmentBytes): the host's activity bits
 *
 * A segment's "dirty" and "marked" keys are always written (or deleted, when the segment becomes
 * empty) in the same atomic, so a reader that fetches both in one snapshot sees a matching pair.
 *
 * Activity marks (the predictive record of seeds 000/004) are kept strictly apart from dirty marks:
 * a host records a region's activity before it first writes there while the backup is online, and
 * retires it once its writes there are safe. They are never in the log, never in dirtyRegions, and
 * never move the mark sequence. Only a promote (host restart, or reconstruct for a dead host) turns
 * them into dirty marks; it writes a segment's dirty keys and the deletion (or shrinking) of its
 * activity key in the same atomic (commit/batch_commit.ts). Activity keys carry no times: a promote marks
 * at the tracker's time. Like dirty segments, an activity segment with no bit set is deleted.
 * No ["log", ...] event keys are kept: per-region first/last mark times answer time-range queries.
 */

/** A registered volume, as stored under ["volume", name]. */
export interface VolumeRecord {
  name: string;
  sizeBytes: number;
  regionBytes: number;
  ownerHost: string;
  ownerUrl: string;
  leaseExpiresAt: number;
  registeredAt: number;
  /**
   * A random UUID made when the record is created (never changed after): hosts compare it with
   * the one they recorded, so a lost or foreign record is noticed (issue 9). Records written
   * before generations get one when the tracker loads them.
   */
  generation: string;
  /** The owning agent process's random id (absent: registered by an older tool). */
  ownerInstance?: string;
  /** What the owner serves ("HOSTNAME:/real/primary/path"); same host id + same primary = restart. */
  ownerPrimary?: string;
  /** Raised by one per change of owning instance; marks of an older one are fenced. */
  leaseEpoch?: number;
}

/** Key of a volume's registration. */
export const volumeKey = (name: string): Deno.KvKey => ["volume", name];
/** Key of a volume's mark sequence. */
export const seqKey = (name: string): Deno.KvKey => ["seq", name];
/** Key of a bitmap segment. */
export const dirtyKey = (name: string, segment: number): Deno.KvKey => ["dirty", name, segment];
/** Key of a segment's packed mark record. */
export const markedKey = (name: string, segment: number): Deno.KvKey => ["marked", name, segment];

/** Key of a host's activity bitmap segment of a volume. */
export const activityKey = (name: string, host: string, segment: number): Deno.KvKey => [
  "activity",
  name,
  host,
  segment,
];

/** Prefix of all registrations. */
export const volumesPrefix: Deno.KvKey = ["volume"];
/** Prefix of all mark sequences. */
export const seqsPrefix: Deno.KvKey = ["seq"];
/** Prefix of all bitmap segments of a volume. */
export const dirtyPrefix = (name: string): Deno.KvKey => ["dirty", name];
/** Prefix of all mark records of a volume. */
export const markedPrefix = (name: string): Deno.KvKey => ["marked", name];
/** Prefix of all activity segments of a volume, every host's. */
export const activityPrefix = (name: string): Deno.KvKey => ["activity", name];
/** Prefix of one host's activity segments of a volume. */
export const activityHostPrefix = (name: string, host: string): Deno.KvKey => [
  "activity",
  name,
  host,
];
