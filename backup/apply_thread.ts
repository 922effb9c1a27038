/**
 * The applier's writes to the secondaries, run on a worker thread (apply_worker.ts) so that they
 * never stall the backup's event loop: there the link reads frames, the journal commits groups
 * and acks go out, and a synchronous apply step of 8 MiB stalled all of it for 17–26 ms (issue 8).
 *
 * `apply` hands over journal batches in order and resolves once every record of them is written
 * (not synced). Small batches are packed into one buffer of at most `applyMessageBytesMax` per
 * message and transferred (and back, for the next message): one copy per batch, never a clone of
 * a larger buffer a batch happens to be a view of. A large batch that owns its buffer is lent
 * instead: transferred there and back, no copy. One message is in flight at a time: order is
 * kept, and the main thread never stalls copying a whole 64 MiB step at once.
 */
import assert from "node:assert/strict";
import type { JournalEntry } from "./journal.ts";
import { isPoolPayload, movedPayload } from "./payload_pool.ts";

/** Most batch bytes packed into one message to the worker (a larger batch goes alone). */
export const applyMessageBytesMax = 4 * 1024 * 1024;

/**
 * Batches at least this large that own their whole buffer are lent to the worker (transferred
 * there and back) instead of copied into the packing buffer: at 1 MiB writes the copy cost the
 * backup's main thread 0.2–0.4 ms of CPU a write (measured).
 */
export const applyLendBytesMin = 256 * 1024;

/**
 * A batch that can be lent: large, and the only view of its buffer (owning all of it, or a link
 * payload from the journal's pool, backup/payload_pool.ts, whose buffer holds nothing else).
 */
function lendable(body: Uint8Array): body is Uint8Array<ArrayBuffer> {
  return body.length >= applyLendBytesMin && body.buffer instanceof ArrayBuffer &&
    body.byteOffset === 0 &&
    (body.byteLength === body.buffer.byteLength || isPoolPayload(body));
}

/** What the worker answered for one message: the volumes written and the bytes, back. */
interface Applied {
  touched: string[];
  bytes: Uint8Array<ArrayBuffer>;
}

/** The worker could not apply a message; its bytes came back. */
class ApplyFailed extends Error {
  constructor(message: string, readonly bytes: Uint8Array<ArrayBuffer>) {
    super(message);
  }
}

/** Messages to the worker. */
export type ApplyRequest =
  | { type: "apply"; id: number; dir: string; bytes: Uint8Array<ArrayBuffer> }
  | { type: "close" };

/** Messages from the worker. */
export type ApplyReply =
  | { type: "applied"; id: number; touched: string[]; bytes: Uint8Array<ArrayBuffer> }
  | { type: "failed"; id: number; message: string; bytes: Uint8Array<ArrayBuffer> }
  | { type: "closed" };

/** One worker thread writing records to the secondary images under `dir`. */
export class ApplyThread {
  #worker: Worker | undefined;
  #nextId = 1;
  #waiting = new Map<
    number,
    { resolve: (applied: Applied) => void; reject: (e: Error) => void }
  >();
  #closed: (() => void) | undefined;
  /**
   * The packing buffer, transferred to the worker and back with each message: a fresh buffer per
   * message costs page faults on every byte (1 MiB writes: +0.4 ms of backup CPU a write).
   */
  #spare: ArrayBuffer | undefined;

  constructor(private readonly dir: string) {}

  /** Writes every record of `entries`, in order; adds the volumes written to `touched`. */
  async apply(entries: readonly JournalEntry[], touched: Set<string>): Promise<void> {
    for (let i = 0; i < entries.length;) {
      const first = entries[i];
      assert.ok(first.body.length > 0, "A batch lent to the apply worker never came back");
      if (lendable(first.body)) {
        const lent = first.body;
        const reply = await this.#send(lent).catch((err) => {
          if (err instanceof ApplyFailed) {
            first.body = err.bytes;
            movedPayload(lent, err.bytes);
          }
          throw err;
        });
        first.body = reply.bytes;
        movedPayload(lent, reply.bytes);
        for (const v of reply.touched) touched.add(v);
        i++;
        continue;
      }
      let bytes = first.body.length;
      let n = 1;
      while (
        i + n < entries.length && !lendable(entries[i + n].body) &&
        bytes + entries[i + n].body.length <= applyMessageBytesMax
      ) {
        bytes += entries[i + n].body.length;
        n++;
      }
      const buffer = this.#spare && this.#spare.byteLength >= bytes
        ? this.#spare
        : new ArrayBuffer(Math.max(bytes, applyMessageBytesMax));
      this.#spare = undefined;
      const packed = new Uint8Array(buffer, 0, bytes);
      let pos = 0;
      for (const e of entries.slice(i, i + n)) {
        packed.set(e.body, pos);
        pos += e.body.length;
      }
      const reply = await this.#send(packed).catch((err) => {
        if (err instanceof ApplyFailed) this.#spare = err.bytes.buffer;
        throw err;
      });
      this.#spare = reply.bytes.buffer;
      for (const v of reply.touched) touched.add(v);
      i += n;
    }
  }

  /** Closes the worker's files and ends the thread. */
  async close(): Promise<void> {
    const worker = this.#worker;
    if (!worker) return;
    this.#worker = undefined;
    const closed = new Promise<void>((resolve) => this.#closed = resolve);
    worker.postMessage({ type: "close" } satisfies ApplyRequest);
    await closed;
    worker.terminate();
  }

  /** Transfers `bytes` to the worker; the reply brings them back, applied or not. */
  #send(bytes: Uint8Array<ArrayBuffer>): Promise<Applied> {
    const worker = this.#start();
    const id = this.#nextId++;
    const done = new Promise<Applied>((resolve, reject) => {
      this.#waiting.set(id, { resolve, reject });
    });
    const msg: ApplyRequest = { type: "apply", id, dir: this.dir, bytes };
    worker.postMessage(msg, [bytes.buffer]);
    return done;
  }

  #start(): Worker {
    if (this.#worker) return this.#worker;
    const worker = new Worker(new URL("./apply_worker.ts", import.meta.url).href, {
      type: "module",
    });
    worker.onmessage = (e: MessageEvent<ApplyReply>) => {
      const msg = e.data;
      if (msg.type === "closed") {
        this.#closed?.();
        return;
      }
      const w = this.#waiting.get(msg.id);
      this.#waiting.delete(msg.id);
      if (msg.type === "applied") w?.resolve({ touched: msg.touched, bytes: msg.bytes });
      else w?.reject(new ApplyFailed(msg.message, msg.bytes));
    };
    worker.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      // The thread is gone: fail what waits; the next apply starts a new one.
      const err = new Error(`Apply worker failed: ${e.message}`);
      if (this.#worker === worker) this.#worker = undefined;
      worker.terminate();
      for (const w of this.#waiting.values()) w.reject(err);
      this.#waiting.clear();
      this.#closed?.();
    };
    this.#worker = worker;
    return worker;
  }
}
