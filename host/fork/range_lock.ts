/**
 * Byte-range locks that order overlapping operations on a volume (writes against writes, and
 * writes against resync copies of the same regions), first come first served.
 *
 * An acquirer registers its range at once and then waits for every earlier overlapping holder or
 * waiter to release, so waits only point backwards in arrival order: no deadlock, no starvation.
 * Cost is linear in the number of ranges held or awaited, which the front-ends bound
 * (in-flight requests per connection, batch sizes).
 */

interface Entry {
  start: number;
  end: number;
  /** Made only when a later acquirer waits for this range: most writes overlap nothing. */
  released?: Promise<void>;
  wake?: () => void;
}

export class RangeLock {
  readonly #entries = new Set<Entry>();

  /** Ranges currently held or awaited. */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * Every range held or awaited now, in arrival order: writes in flight, resync copies. A waiter
   * has not changed anything yet, so this is a superset of what is being changed.
   */
  ranges(): { offset: number; length: number }[] {
    return [...this.#entries].map((e) => ({ offset: e.start, length: e.end - e.start }));
  }

  /**
   * Takes `offset`+`length` at once when no earlier range overlaps it and returns the release;
   * undefined (nothing registered) when it would have to wait: call `acquire` then. The write
   * path's common case costs no promise this way.
   */
  tryAcquire(offset: number, length: number): (() => void) | undefined {
    const end = offset + length;
    for (const e of this.#entries) if (e.start < end && offset < e.end) return undefined;
    return this.#hold({ start: offset, end });
  }

  /** Waits until `offset`+`length` is free of earlier overlapping ranges; returns the release. */
  async acquire(offset: number, length: number): Promise<() => void> {
    const start = offset;
    const end = offset + length;
    const earlier: Promise<void>[] = [];
    for (const e of this.#entries) {
      if (e.start < end && start < e.end) {
        earlier.push(e.released ??= new Promise<void>((resolve) => (e.wake = resolve)));
      }
    }
    const release = this.#hold({ start, end });
    if (earlier.length > 0) await Promise.all(earlier);
    return release;
  }

  /** Registers `entry` (in arrival order) and returns its release. */
  #hold(entry: Entry): () => void {
    this.#entries.add(entry);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.#entries.delete(entry);
      entry.wake?.();
    };
  }

  /** Runs `fn` while holding the range. */
  async with<T>(offset: number, length: number, fn: () => Promise<T>): Promise<T> {
    const release = await this.acquire(offset, length);
    try {
      return await fn();
    } finally {
      release();
    }
  }
}
