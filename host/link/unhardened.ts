/**
 * Seed 002's unhardened-region record (fig. 5/6), per volume: the regions the backup acknowledged
 * as received (`received` mode) but has not yet said are hardened (durable in its journal).
 *
 * Two region sets, current and old. A record acknowledged as received sets its regions in
 * `current`. A toggle saves `current` as `old` (dropping the previous `old`) and starts an empty
 * `current`, remembering the boundary: the highest frame sequence sent at that moment, so every
 * record in the saved set has a sequence at or below it. The next toggle waits for a HARDENED
 * notice covering that boundary; only then may `old` be dropped. So `current ∪ old` always holds
 * every region received and not yet known hardened: a superset of what a backup crash can lose,
 * which the host marks at the tracker when the link breaks.
 *
 * When a notice covers every frame sent, both sets are dropped at once (an idle link would
 * otherwise keep its last regions until the next write).
 *
 * Regions, not bytes: the set grows with the regions written between two notices, not with the
 * bytes, and matches the tracker's granularity.
 */
import { regionsOf } from "../../src/extent.ts";

/** The current/old unhardened regions of one volume. */
export class UnhardenedRegions {
  #current = new Set<number>();
  #old = new Set<number>();
  /** Highest sequence sent at the last toggle; `old` holds only records at or below it. */
  #boundary = 0;

  constructor(readonly regionBytes: number) {}

  /** Records that the backup received the write of `length` bytes at `offset`. */
  received(offset: number, length: number): void {
    const run = regionsOf(offset, length, this.regionBytes);
    for (let r = run.first; r < run.first + run.count; r++) this.#current.add(r);
  }

  /**
   * A HARDENED notice: every frame up to `hardenedSeq` is durable. When that covers the last
   * boundary, `old` is no longer needed: toggle (old ← current, current ← empty) and take
   * `highestSentSeq` as the new boundary.
   */
  notice(hardenedSeq: number, highestSentSeq: number): void {
    if (hardenedSeq < this.#boundary) return;
    if (hardenedSeq >= highestSentSeq) {
      // Everything sent is hardened, so everything received is: nothing is left to lose.
      this.#current.clear();
      this.#old.clear();
      this.#boundary = highestSentSeq;
      return;
    }
    this.#old = this.#current;
    this.#current = new Set();
    this.#boundary = highestSentSeq;
  }

  /** current ∪ old, ascending: every region that a backup crash may have lost. */
  unionRegions(): number[] {
    const all = new Set(this.#current);
    for (const r of this.#old) all.add(r);
    return [...all].sort((a, b) => a - b);
  }

  /** Forgets everything: call once the union is marked at the tracker. */
  clear(): void {
    this.#current.clear();
    this.#old.clear();
    this.#boundary = 0;
  }

  /** Both sets are empty. */
  get empty(): boolean {
    return this.#current.size === 0 && this.#old.size === 0;
  }
}
