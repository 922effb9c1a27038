/**
 * A bounded least-recently-used cache of committed segments, keyed by a scope (a volume name, or
 * "volume/host" for a host's activity bitmaps: names never hold '/') and a segment index.
 * It holds only what is in KV: the committer fills it from its own reads and commits (it is the
 * only writer), so a hit can stand in for a KV read. `null` caches a segment known to be clean.
 */
import type { StoredSegment } from "./segment_state.ts";

/** Default bound: 1024 segments, at most ~25 MiB when every cached segment is fully dirty. */
export const segmentCacheMaxDefault = 1024;

/** Bounded LRU of stored segments (dirty segments by default, or activity bitmaps). */
export class SegmentCache<T = StoredSegment> {
  readonly #entries = new Map<string, T | null>();

  constructor(readonly segmentCacheMax = segmentCacheMaxDefault) {}

  static #key(volume: string, segment: number): string {
    return `${volume}/${segment}`;
  }

  /** The cached segment (null: known clean), or undefined when not cached. */
  get(volume: string, segment: number): T | null | undefined {
    const key = SegmentCache.#key(volume, segment);
    const hit = this.#entries.get(key);
    if (hit === undefined) return undefined;
    this.#entries.delete(key);
    this.#entries.set(key, hit);
    return hit;
  }

  /** Caches the committed state of a segment, evicting the least recently used past the bound. */
  set(volume: string, segment: number, stored: T | null): void {
    if (this.segmentCacheMax <= 0) return;
    const key = SegmentCache.#key(volume, segment);
    this.#entries.delete(key);
    this.#entries.set(key, stored);
    while (this.#entries.size > this.segmentCacheMax) {
      this.#entries.delete(this.#entries.keys().next().value!);
    }
  }

  /** Forgets a segment (its committed state is unknown, e.g. after a failed commit). */
  delete(volume: string, segment: number): void {
    this.#entries.delete(SegmentCache.#key(volume, segment));
  }

  /** Number of cached segments. */
  get size(): number {
    return this.#entries.size;
  }
}
