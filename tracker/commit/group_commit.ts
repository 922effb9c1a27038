/**
 * Group commit: operations are queued, and one loop takes everything queued (up to a weight
 * bound), commits it as one batch, and only then settles each operation's promise. While a batch
 * commits, new operations gather for the next one, so load turns into bigger batches rather than
 * more commits. Exclusive tasks (registration, loading a volume summary) run between batches, so
 * everything that writes or must see a quiet store is serialized through this one loop.
 */
import { unavailable } from "../../src/errors.ts";

/** An operation the batch may fail on its own (e.g. a stale token) without failing the batch. */
export interface BatchOp {
  error?: Error;
}

/** Bounds of the committer. */
export interface GroupCommitLimits {
  /** Most operations waiting; further submissions are refused with 503. */
  queueOpsMax: number;
  /** Most total weight (e.g. segment pieces) one batch takes; a heavier single op goes alone. */
  batchWeightMax: number;
}

interface Waiting<Op> {
  op: Op;
  weight: number;
  done: PromiseWithResolvers<void>;
}

/** Serializes batches of `Op` through `commitBatch`; see the file comment. */
export class GroupCommitter<Op extends BatchOp> {
  readonly #queue: Waiting<Op>[] = [];
  readonly #tasks: Array<() => Promise<void>> = [];
  #active = false;
  #idle: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(
    private readonly commitBatch: (ops: Op[]) => Promise<void>,
    private readonly limits: GroupCommitLimits,
  ) {}

  /** Operations waiting for a batch. */
  get queued(): number {
    return this.#queue.length;
  }

  /** Queues `op`; resolves after the batch holding it committed, rejects if it failed. */
  submit(op: Op, weight = 1): Promise<void> {
    if (this.#closed) return Promise.reject(unavailable("Tracker is shutting down"));
    if (this.#queue.length >= this.limits.queueOpsMax) {
      return Promise.reject(
        unavailable(`Tracking queue is full: ${this.#queue.length} commands waiting`),
      );
    }
    const done = Promise.withResolvers<void>();
    this.#queue.push({ op, weight, done });
    this.#kick();
    return done.promise;
  }

  /** Runs `task` alone, between batches. */
  exclusive<T>(task: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(unavailable("Tracker is shutting down"));
    const done = Promise.withResolvers<T>();
    this.#tasks.push(() => task().then(done.resolve, done.reject));
    this.#kick();
    return done.promise;
  }

  /** Refuses new work and resolves once everything already queued has been committed. */
  async close(): Promise<void> {
    this.#closed = true;
    while (this.#active) await this.#idle;
  }

  #kick(): void {
    if (this.#active) return;
    this.#active = true;
    this.#idle = this.#run().finally(() => {
      this.#active = false;
      if (this.#queue.length || this.#tasks.length) this.#kick();
    });
  }

  async #run(): Promise<void> {
    while (this.#queue.length || this.#tasks.length) {
      const task = this.#tasks.shift();
      if (task) {
        await task();
        continue;
      }
      const batch = this.#takeBatch();
      try {
        await this.commitBatch(batch.map((w) => w.op));
        for (const w of batch) {
          if (w.op.error) w.done.reject(w.op.error);
          else w.done.resolve();
        }
      } catch (err) {
        for (const w of batch) w.done.reject(err);
      }
    }
  }

  #takeBatch(): Waiting<Op>[] {
    let weight = 0;
    let n = 0;
    while (n < this.#queue.length) {
      weight += this.#queue[n].weight;
      if (n > 0 && weight > this.limits.batchWeightMax) break;
      n++;
    }
    return this.#queue.splice(0, n);
  }
}
