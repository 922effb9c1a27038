/**
 * Small buffers cut from one large chunk instead of allocated one by one. A fresh Uint8Array per
 * 4 KiB write payload or 16-byte reply means a backing store per request for the allocator and
 * the garbage collector to track; views of a 256 KiB chunk cost one per chunk. A chunk is never
 * written twice: once used up it is dropped, and the garbage collector frees it when its last
 * view is gone, so a view stays valid as long as anyone holds it.
 */

/** Default chunk size; larger requests get a buffer of their own. */
const slabChunkBytesDefault = 256 * 1024;

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
