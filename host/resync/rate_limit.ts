/**
 * The bound `--resync-bytes-per-sec` puts on a job (resync, checksum resync, verify, cycle): the
 * bytes a job has started by `t` ms after its start never exceed `bytesPerSecMax × t / 1000`.
 *
 * A chunk's bytes are reserved before its worker waits, and it waits until the budget covers them
 * too: with `concurrency` workers the chunks in flight count as soon as they start, not once they
 * finish (counting only finished chunks let up to `concurrency` chunks pass unpaced: 4 MiB/s gave
 * 5.3 MiB/s). So the job's average rate from its start, `bytesDone / elapsed`, stays within the
 * bound at every moment; the price is that the first chunk waits `chunkBytes / bytesPerSecMax`.
 */
import type { Clock } from "../../src/clock.ts";

/** Waits `ms` milliseconds; tests pass their own to step through the waits. */
export type Sleep = (ms: number) => Promise<void>;

/** Waits on the process's timers. */
export const timerSleep: Sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** One job's rate bound from its start; 0 bytes per second = unbounded. */
export class RateLimit {
  #bytesReserved = 0;

  constructor(
    private readonly startedAt: number,
    private readonly bytesPerSecMax: number,
    private readonly clock: Clock,
    private readonly sleep: Sleep = timerSleep,
  ) {}

  /** Bytes let through so far (started, or waiting for their time). */
  get bytesReserved(): number {
    return this.#bytesReserved;
  }

  /** Reserves `bytes` and waits until starting them keeps the job within its bound. */
  async take(bytes: number): Promise<void> {
    if (this.bytesPerSecMax <= 0) return;
    // Reserved before the wait, so a worker arriving meanwhile queues behind these bytes.
    this.#bytesReserved += bytes;
    const earliestMs = this.startedAt + (this.#bytesReserved / this.bytesPerSecMax) * 1000;
    const waitMs = earliestMs - this.clock.now();
    if (waitMs > 0) await this.sleep(waitMs);
  }
}
