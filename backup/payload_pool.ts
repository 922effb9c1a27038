/**
 * Buffers for link frame payloads, recycled once the journal released them (applied and synced to
 * the secondaries): without it every RECORDS frame allocated a fresh ArrayBuffer, and that
 * allocation rate alone (tens of MB/s of short-lived external memory) drove V8 into an
 * incremental mark-compact every ~80 ms, about a tenth of the backup's CPU at 4 KiB depth 32
 * (measured in issue 8 with `--trace-gc` and `perf`).
 *
 * `take(bytes)` hands out a view of exactly `bytes` of a buffer rounded up to a size class (at
 * most 1/8 larger); `give(body)` takes it back. Only the very views this pool handed out and did
 * not take back yet are accepted, so a body from elsewhere (an HTTP batch), a second give of one
 * body, or a stale view of a buffer handed out again, is ignored rather than shared. The caller must not touch a body after giving it. At most
 * `retainBytesMax` bytes wait in the pool; beyond it given buffers are left to the GC.
 */

/**
 * Views handed out by any pool and not given back: each is the only view of its buffer in use,
 * so it may be lent whole to the apply worker (apply_thread.ts), and taken back in its place
 * (`movedPayload`) when the transfer returns it as a new view.
 */
const issued = new WeakSet<Uint8Array>();

/** True when `view` is a pool payload in use: its buffer holds nothing else. */
export function isPoolPayload(view: Uint8Array): boolean {
  return issued.has(view);
}

/**
 * `to` replaces the pool payload `from` (the same bytes, moved to a new buffer object by a
 * transfer and back): `to` is given back in its place. Anything else is left as it is.
 */
export function movedPayload(from: Uint8Array, to: Uint8Array): void {
  if (issued.delete(from)) issued.add(to);
}

/** Smallest buffer handed out (smaller payloads share its class). */
const classBytesMin = 4096;

/**
 * Larger size classes `take` may hand out when a payload's own class has no free buffer (8
 * classes up: at most twice its class). Frames of 4 KiB writes at depth 32 carry 1–32 records,
 * so their sizes spread over ~24 classes whose mix shifts from one checkpoint to the next. With
 * exact classes (and the journal's former 64 MiB retention bound) ~30% of takes missed in a
 * durable run; with both changed ~3% (measured): every miss allocated a fresh zeroed buffer and
 * the GC reclaimed one, two incremental mark-compacts a second.
 */
const classFallbackSteps = 8;

/** The size class of a payload of `bytes`: rounded up to 1/8 of its power of two. */
export function payloadClassBytes(bytes: number): number {
  if (bytes <= classBytesMin) return classBytesMin;
  const step = 2 ** Math.floor(Math.log2(bytes)) / 8;
  return Math.ceil(bytes / step) * step;
}

/** Reusable payload buffers, by size class. */
export class PayloadPool {
  readonly #free = new Map<number, ArrayBuffer[]>();
  #retainedBytes = 0;
  /** Buffers `take` handed out again instead of allocating (for tests and metrics). */
  reused = 0;

  constructor(readonly retainBytesMax: number) {}

  /** Bytes waiting in the pool. */
  get retainedBytes(): number {
    return this.#retainedBytes;
  }

  /**
   * A buffer of `bytes` bytes (contents undefined: the caller fills all of it): a free one of its
   * size class, else of one of the next `classFallbackSteps` classes, else a new one.
   */
  take(bytes: number): Uint8Array<ArrayBuffer> {
    const size = payloadClassBytes(bytes);
    let buffer: ArrayBuffer | undefined;
    for (let c = size, step = 0; step <= classFallbackSteps && !buffer; step++) {
      buffer = this.#free.get(c)?.pop();
      c = payloadClassBytes(c + 1);
    }
    if (buffer) {
      this.#retainedBytes -= buffer.byteLength;
      this.reused++;
    }
    const view = new Uint8Array(buffer ?? new ArrayBuffer(size), 0, bytes);
    issued.add(view);
    return view;
  }

  /** Takes back a body `take` handed out (anything else is ignored). */
  give(body: Uint8Array): void {
    if (!issued.delete(body)) return;
    const b = body.buffer as ArrayBuffer;
    if (b.byteLength === 0 || this.#retainedBytes + b.byteLength > this.retainBytesMax) return;
    let list = this.#free.get(b.byteLength);
    if (!list) {
      list = [];
      this.#free.set(b.byteLength, list);
    }
    list.push(b);
    this.#retainedBytes += b.byteLength;
  }
}
