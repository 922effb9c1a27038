/**
 * The tracker's Deno KV layout: every key it writes, and the registration record.
 *
 *   ["volume", name]          → VolumeRecord
 *   ["seq", name]             → number: the volume's mark sequence, written with each mark commit
 *   ["dirty", name, segment]  → Uint8Array(segmentBytes): the segment's dirty bits
 *   ["marked", name, segment] → Uint8Array: packed mark record (see segment_state.ts)
 *
 * A segment's "dirty" and "marked" keys are always written (or deleted, when the segment becomes
 * empty) in the same atomic, so a reader that fetches both in one snapshot sees a matching pair.
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
}

/** Key of a volume's registration. */
export const volumeKey = (name: string): Deno.KvKey => ["volume", name];
/** Key of a volume's mark sequence. */
export const seqKey = (name: string): Deno.KvKey => ["seq", name];
/** Key of a bitmap segment. */
export const dirtyKey = (name: string, segment: number): Deno.KvKey => ["dirty", name, segment];
/** Key of a segment's packed mark record. */
export const markedKey = (name: string, segment: number): Deno.KvKey => ["marked", name, segment];

/** Prefix of all registrations. */
export const volumesPrefix: Deno.KvKey = ["volume"];
/** Prefix of all mark sequences. */
export const seqsPrefix: Deno.KvKey = ["seq"];
/** Prefix of all bitmap segments of a volume. */
export const dirtyPrefix = (name: string): Deno.KvKey => ["dirty", name];
/** Prefix of all mark records of a volume. */
export const markedPrefix = (name: string): Deno.KvKey => ["marked", name];
