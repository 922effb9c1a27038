/**
 * The epoch fence: keeps a mirror write that the host already gave up on from reaching the journal
 * after writes the host sent later.
 *
 * A host that marks the backup offline (a timeout, say) raises its epoch, and registers its volumes
 * with the new epoch before it sends anything again. A batch carrying an older epoch is refused at
 * the moment the journal orders it (journal.ts `admit`), so a stale batch is either journaled
 * before the registration, and so before every later write and resync copy, or never. Without it,
 * a timed-out batch still queued here could land after a resync copy of the same region and
 * silently overwrite newer data in the secondary.
 *
 * Epochs live in memory only: a restart drops every request in flight with it.
 */
import { conflict } from "../src/errors.ts";

export class EpochFence {
  readonly #epochs = new Map<string, number>();

  /** Raises the fence of `volume` to `epoch` (never lowers it). */
  raise(volume: string, epoch: number): void {
    if (epoch > (this.#epochs.get(volume) ?? -1)) this.#epochs.set(volume, epoch);
  }

  /** The current fence of `volume`, or undefined when none was set. */
  epochOf(volume: string): number | undefined {
    return this.#epochs.get(volume);
  }

  /** Throws 409 when a batch of `epoch` is older than the fence of `volume`. */
  admit(volume: string, epoch: number): void {
    const fence = this.#epochs.get(volume);
    if (fence !== undefined && epoch < fence) {
      throw conflict(`Batch of volume "${volume}" carries epoch ${epoch}, older than ${fence}`);
    }
  }
}
