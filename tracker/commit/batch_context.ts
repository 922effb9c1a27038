/**
 * What a commit batch needs of the state façade. Its own file so the loader and the batch
 * commit both name it without importing each other.
 */
import type { ActivitySummary } from "../activity_state.ts";
import type { SegmentCache } from "../segment_cache.ts";
import type { ReadSet } from "../store/read_set.ts";
import type { AtomicLimits, TrackerStore } from "../store/tracker_store.ts";
import type { SegmentSummary, VolumeState } from "../volume_state.ts";

/** What a batch needs of the store. */
export interface BatchContext {
  kv: TrackerStore;
  /** How much one atomic of the store may hold. */
  atomicLimits: AtomicLimits;
  /**
   * Set on a shared store (other trackers write it too): called at the start of every batch
   * attempt with the volumes it touches, to re-read what memory may hold stale (each volume's
   * mark sequence, recorded in `reads`; summaries dropped). Absent: this process is the only
   * writer and its memory is the truth.
   */
  refresh?(names: readonly string[], reads: ReadSet): Promise<void>;
  cache: SegmentCache;
  /** Committed activity segments, scoped by activityScope(volume, host). */
  activityCache: SegmentCache<Uint8Array>;
  volume(name: string): VolumeState;
  /** The volume's summary, loaded if needed; called inside the committer only. */
  summary(v: VolumeState): Promise<Map<number, SegmentSummary>>;
  /** The volume's activity summary, loaded if needed; called inside the committer only. */
  activity(v: VolumeState): Promise<ActivitySummary>;
  /** Called after each atomic that committed. */
  onAtomic(): void;
}
