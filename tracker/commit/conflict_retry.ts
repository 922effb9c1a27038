/**
 * Retrying what lost a race on a shared store (several trackers over one etcd cluster): an
 * attempt whose checks failed throws StoreConflict and is tried again from a fresh read, after a
 * random backoff so two trackers that collided do not collide again in lockstep; after
 * `commitConflictRetriesMax` attempts the caller gets 503 (try again later, or another tracker).
 */
import { unavailable } from "../../src/errors.ts";
import { StoreConflict } from "../store/read_set.ts";
import type { StoreTraits } from "../store/tracker_store.ts";

/** Attempts of one batch (or registration) on a shared store before it fails with 503. */
export const commitConflictRetriesMax = 16;
/** Longest wait before a retry after a conflict: a random 0..min(2^attempt, this) ms. */
export const conflictBackoffMsMax = 50;

/** How retries are paced and counted. */
export interface RetryOptions {
  /** Random source of the backoff, in [0, 1). */
  random: () => number;
  /** Called before each retry, after a conflict (metrics; resetting what the attempt changed). */
  onConflict(err: StoreConflict): void;
}

/** Runs `attempt` until it does not throw StoreConflict; see the file comment. */
export async function retryOnConflict<T>(
  what: string,
  attempt: () => Promise<T>,
  opts: RetryOptions,
): Promise<T> {
  for (let n = 1;; n++) {
    try {
      return await attempt();
    } catch (err) {
      if (!(err instanceof StoreConflict)) throw err;
      if (n >= commitConflictRetriesMax) {
        throw unavailable(
          `${what}: ${err.message}; gave up after ${n} attempts (commitConflictRetriesMax)`,
        );
      }
      opts.onConflict(err);
      const ms = opts.random() * Math.min(2 ** n, conflictBackoffMsMax);
      await new Promise((r) => setTimeout(r, ms));
    }
  }
}

/**
 * Most segment pieces in one batch on a shared store: what fits one atomic (two keys a segment,
 * plus the volume's sequence), so a lost race costs one round trip, not several — two trackers'
 * multi-atomic batches on one volume could starve each other.
 */
export function sharedBatchPieces(traits: StoreTraits): number {
  return Math.max(1, Math.floor((traits.atomic.mutationsMax - 1) / 2));
}
