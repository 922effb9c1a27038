/**
 * Serialized reply writing for one NBD connection. Replies complete in any order, but each one
 * must reach the socket whole, never interleaved with another. Replies queued while a write is in
 * progress go out together: small pieces are copied into one buffer and sent with one write call,
 * large read data is written from its own buffer without a copy.
 */

/** What the writer needs from a socket (Deno.Conn has it). */
export interface ByteSink {
  write(p: Uint8Array): Promise<number>;
}

/** Pieces up to this size are coalesced into the batch buffer; larger ones are written directly. */
const coalescePieceBytesMax = 64 * 1024;
/** Size of the buffer small pieces are coalesced into. */
const batchBytes = 256 * 1024;

interface Queued {
  pieces: Uint8Array[];
  done?: () => void;
}

export class ReplyWriter {
  readonly #sink: ByteSink;
  readonly #onError: (err: unknown) => void;
  readonly #batch = new Uint8Array(batchBytes);
  #queue: Queued[] = [];
  #running = false;
  #failed = false;
  #idle: (() => void)[] = [];

  /** `onError` is called once, on the first failed write; later replies are dropped. */
  constructor(sink: ByteSink, onError: (err: unknown) => void) {
    this.#sink = sink;
    this.#onError = onError;
  }

  /** True once a write failed: the peer is gone. */
  get failed(): boolean {
    return this.#failed;
  }

  /**
   * Queues one reply made of `pieces`, written back to back. `done` runs once the reply was
   * written, or dropped because the socket failed.
   */
  send(pieces: Uint8Array[], done?: () => void): void {
    if (this.#failed) {
      done?.();
      return;
    }
    this.#queue.push({ pieces, done });
    if (this.#running) return;
    // One microtask later: the replies of writes one backup ack completed are queued at the same
    // microtask depth, one after another, and leave in one socket write instead of the first alone.
    this.#running = true;
    queueMicrotask(() => void this.#run());
  }

  /** Resolves when every reply queued so far was written or dropped. */
  drained(): Promise<void> {
    if (!this.#running) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  async #run(): Promise<void> {
    this.#running = true;
    while (this.#queue.length > 0) {
      const batch = this.#queue;
      this.#queue = [];
      if (!this.#failed) {
        try {
          await this.#writeBatch(batch);
        } catch (err) {
          this.#failed = true;
          this.#onError(err);
        }
      }
      for (const q of batch) q.done?.();
    }
    this.#running = false;
    for (const resolve of this.#idle.splice(0)) resolve();
  }

  async #writeBatch(batch: Queued[]): Promise<void> {
    let used = 0;
    for (const q of batch) {
      for (const piece of q.pieces) {
        if (piece.length <= coalescePieceBytesMax) {
          if (used + piece.length > batchBytes) {
            await this.#writeAll(this.#batch.subarray(0, used));
            used = 0;
          }
          this.#batch.set(piece, used);
          used += piece.length;
        } else {
          if (used > 0) await this.#writeAll(this.#batch.subarray(0, used));
          used = 0;
          await this.#writeAll(piece);
        }
      }
    }
    if (used > 0) await this.#writeAll(this.#batch.subarray(0, used));
  }

  async #writeAll(bytes: Uint8Array): Promise<void> {
    let done = 0;
    while (done < bytes.length) done += await this.#sink.write(bytes.subarray(done));
  }
}
