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
  released: Promise<void>;
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

  /** Waits until `offset`+`length` is free of earlier overlapping ranges; returns the release. */
  async acquire(offset: number, length: number): Promise<() => void> {
    const start = offset;
    const end = offset + length;
    const earlier: Promise<void>[] = [];
    for (const e of this.#entries) {
      if (e.start < end && start < e.end) earlier.push(e.released);
    }
    let release!: () => void;
    const entry: Entry = {
      start,
      end,
      released: new Promise<void>((resolve) => (release = resolve)),
    };
    this.#entries.add(entry);
    if (earlier.length > 0) await Promise.all(earlier);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.#entries.delete(entry);
      release();
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
