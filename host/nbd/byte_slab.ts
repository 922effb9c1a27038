/**
 * Small buffers cut from one larger chunk instead of allocated one by one: a 16-byte NBD reply
 * and its DataView per request cost about 0.4 µs, a view of a shared chunk under 0.05 µs. A
 * chunk is never written twice: once used up it is dropped, and the garbage collector frees it
 * when its last view is gone, so a view stays valid as long as anyone holds it. (Write payloads,
 * which live until the device write resolved, are reused through payload_pool.ts instead.)
 */

/** Default chunk size: under the C allocator's threshold for a fresh mapping per allocation. */
const slabChunkBytesDefault = 64 * 1024;

export class ByteSlab {
  #chunk = new Uint8Array(0);
  #view = new DataView(this.#chunk.buffer);
  #used = 0;

  constructor(private readonly chunkBytes = slabChunkBytesDefault) {}

  /** Reserves `n` bytes; returns their offset in `chunk` / `view` (valid until the next take). */
  reserve(n: number): number {
    if (this.#used + n > this.#chunk.length) {
      this.#chunk = new Uint8Array(Math.max(this.chunkBytes, n));
      this.#view = new DataView(this.#chunk.buffer);
      this.#used = 0;
    }
    const at = this.#used;
    this.#used += n;
    return at;
  }

  /** The chunk the last `reserve` cut from. */
  get chunk(): Uint8Array {
    return this.#chunk;
  }

  /** A DataView over `chunk`. */
  get view(): DataView {
    return this.#view;
  }

  /** `n` bytes of their own (contents zero), cut from the current chunk. */
  take(n: number): Uint8Array {
    const at = this.reserve(n);
    return this.#chunk.subarray(at, at + n);
  }
}
