/**
 * The epoch fence: keeps mirror writes that must not land any more out of the journal. A volume's
 * fence is a pair (lease epoch, link epoch), ordered lexicographically:
 *
 * - The **lease epoch** comes from the tracker, raised by one whenever another agent instance
 *   takes the volume (takeover, expiry, restart). A host registers its volumes (PUT and HELLO)
 *   with it, so once the new owner registered, everything the old owner sends is refused with
 *   409 `Volume "NAME" is fenced: ...` (src/fencing.ts), and the old owner stops acknowledging.
 * - The **link epoch** orders one agent's own connections: a host that marks the backup offline
 *   (a timeout, say) raises it and registers again before it sends anything, so a batch it gave
 *   up on, still queued here, is refused at the moment the journal orders it (journal.ts
 *   `admit`): it is journaled before the registration, and so before every later write and
 *   resync copy, or never. Without it, a timed-out batch could land after a resync copy of the
 *   same region and silently overwrite newer data in the secondary.
 *
 * Registration values are checked before anything changes (400 naming the value and the bound):
 * a link epoch may not be more than `epochAheadMsMax` ahead of this backup's clock, and a lease
 * epoch may not rise more than `leaseEpochStepMax` over the volume's current one (src/limits.ts
 * gives the arithmetic). So the real protocol always passes, and one forged request such as
 * `epoch: 9007199254740991` cannot fence a volume for good. Moving an epoch within the bounds
 * needs the backup's bearer token when one is set, like every route (src/service.ts).
 *
 * Epochs live in memory only: a restart drops every request in flight with it.
 */
import { badRequest, conflict } from "../src/errors.ts";
import { fencedError } from "../src/fencing.ts";
import { epochAheadMsMax, leaseEpochStepMax } from "../src/limits.ts";

/** The epochs a registration (PUT /v1/volumes/{name}, HELLO) names; either may be absent. */
export interface EpochClaim {
  /** Link epoch. */
  epoch?: number;
  leaseEpoch?: number;
}

interface Fence {
  lease: number;
  /** -1 when only a lease epoch was registered. */
  link: number;
}

export class EpochFence {
  readonly #fences = new Map<string, Fence>();

  /** `now` is the backup's clock, in ms since the epoch (link epochs are clock-based). */
  constructor(private readonly now: () => number = Date.now) {}

  /**
   * Throws what registering `claim` for `volume` would throw, changing nothing: 400 for a value
   * out of bounds, 409 fenced for a lease epoch older than the volume's.
   */
  check(volume: string, claim: EpochClaim): void {
    const { epoch, leaseEpoch } = claim;
    if (epoch !== undefined) {
      if (!Number.isSafeInteger(epoch) || epoch < 0) {
        throw badRequest(`Volume "${volume}" epoch ${epoch} must be a whole number >= 0`);
      }
      const now = this.now();
      if (epoch > now + epochAheadMsMax) {
        throw badRequest(
          `Volume "${volume}" epoch ${epoch} is more than epochAheadMsMax ${epochAheadMsMax} ms ` +
            `ahead of the backup's clock ${now}`,
        );
      }
    }
    if (leaseEpoch === undefined) return;
    if (!Number.isSafeInteger(leaseEpoch) || leaseEpoch < 0) {
      throw badRequest(`Volume "${volume}" leaseEpoch ${leaseEpoch} must be a whole number >= 0`);
    }
    const current = this.#fences.get(volume)?.lease ?? 0;
    if (leaseEpoch > current + leaseEpochStepMax) {
      throw badRequest(
        `Volume "${volume}" leaseEpoch ${leaseEpoch} is more than leaseEpochStepMax ` +
          `${leaseEpochStepMax} above the backup's ${current}`,
      );
    }
    if (leaseEpoch < current) {
      throw fencedError(
        volume,
        `lease epoch ${leaseEpoch} is older than ${current}: another host agent instance took ` +
          `the volume over`,
      );
    }
  }

  /**
   * Checks `claim` (see `check`) and raises the fence of `volume` to it; never lowers it. A
   * registration without a lease epoch counts as lease epoch 0 (older tools).
   */
  raise(volume: string, claim: EpochClaim): void {
    this.check(volume, claim);
    if (claim.epoch === undefined && claim.leaseEpoch === undefined) return;
    const lease = claim.leaseEpoch ?? 0;
    const link = claim.epoch ?? -1;
    const fence = this.#fences.get(volume);
    if (!fence || lease > fence.lease) this.#fences.set(volume, { lease, link });
    else if (lease === fence.lease && link > fence.link) fence.link = link;
  }

  /** The current link epoch of `volume`'s fence, or undefined when none was set. */
  epochOf(volume: string): number | undefined {
    const link = this.#fences.get(volume)?.link;
    return link === undefined || link < 0 ? undefined : link;
  }

  /** The current lease epoch of `volume`'s fence, or undefined when none was set. */
  leaseEpochOf(volume: string): number | undefined {
    return this.#fences.get(volume)?.lease;
  }

  /**
   * Throws 409 when a batch of (`leaseEpoch` ?? 0, `epoch`) is older than the fence of `volume`:
   * "fenced" when its lease epoch is older (another instance owns the volume now), a plain
   * conflict when only its link epoch is (the same agent's older connection).
   */
  admit(volume: string, epoch: number | undefined, leaseEpoch?: number): void {
    const fence = this.#fences.get(volume);
    if (!fence) return;
    const lease = leaseEpoch ?? 0;
    if (lease < fence.lease) {
      throw fencedError(
        volume,
        `a batch of lease epoch ${lease} is older than ${fence.lease}: another host agent ` +
          `instance took the volume over`,
      );
    }
    if (lease === fence.lease && epoch !== undefined && epoch < fence.link) {
      throw conflict(
        `Batch of volume "${volume}" carries epoch ${epoch}, older than ${fence.link}`,
      );
    }
  }
}
