/**
 * Buffered reading from a socket for the NBD server: one fixed buffer, filled by as few read calls
 * as possible, so a burst of pipelined small requests costs one read, not one per request. Large
 * payloads go straight into their destination without passing through the buffer.
 */

/** What the reader needs from a socket (Deno.Conn has it). */
export interface ByteSource {
  read(p: Uint8Array): Promise<number | null>;
}

export class SocketReader {
  readonly #src: ByteSource;
  readonly #buf: Uint8Array;
  readonly #view: DataView;
  #start = 0;
  #end = 0;

  constructor(src: ByteSource, capacityBytes: number) {
    this.#src = src;
    this.#buf = new Uint8Array(capacityBytes);
    this.#view = new DataView(this.#buf.buffer);
  }

  get capacityBytes(): number {
    return this.#buf.length;
  }

  /** Bytes read from the socket and not consumed yet. */
  get buffered(): number {
    return this.#end - this.#start;
  }

  /** The whole buffer, for parsing in place at `start`; valid until the next fill. */
  get view(): DataView {
    return this.#view;
  }

  /** Where the unconsumed bytes begin in `view`. */
  get start(): number {
    return this.#start;
  }

  /**
   * Ensures at least `n` (at most the capacity) bytes are buffered. Resolves false when the peer
   * closed first; the bytes that did arrive stay buffered.
   */
  async fill(n: number): Promise<boolean> {
    if (this.buffered >= n) return true;
    if (n > this.#buf.length) {
      throw new RangeError(`Fill of ${n} bytes exceeds reader capacity ${this.#buf.length}`);
    }
    if (this.#start + n > this.#buf.length) {
      this.#buf.copyWithin(0, this.#start, this.#end);
      this.#end -= this.#start;
      this.#start = 0;
    }
    while (this.buffered < n) {
      const got = await this.#src.read(this.#buf.subarray(this.#end));
      if (got === null) return false;
      this.#end += got;
    }
    return true;
  }

  /** Marks `n` buffered bytes as consumed. */
  consume(n: number): void {
    if (n > this.buffered) {
      throw new RangeError(`Consume of ${n} exceeds ${this.buffered} buffered`);
    }
    this.#start += n;
    if (this.#start === this.#end) this.#start = this.#end = 0;
  }

  /** A copy of the next `n` buffered bytes, consumed. */
  take(n: number): Uint8Array {
    const out = this.#buf.slice(this.#start, this.#start + n);
    this.consume(n);
    return out;
  }

  /** Fills `dest` from buffered bytes, consumed; at least `dest.length` must be buffered. */
  takeInto(dest: Uint8Array): void {
    if (dest.length > this.buffered) {
      throw new RangeError(`Take of ${dest.length} exceeds ${this.buffered} buffered`);
    }
    dest.set(this.#buf.subarray(this.#start, this.#start + dest.length));
    this.consume(dest.length);
  }

  /** Fills `dest` completely; false when the peer closed first (dest is then partly filled). */
  async readExactly(dest: Uint8Array): Promise<boolean> {
    let done = Math.min(this.buffered, dest.length);
    dest.set(this.#buf.subarray(this.#start, this.#start + done));
    this.consume(done);
    // A short remainder is read through the buffer so the next headers arrive in the same call.
    const rest = dest.length - done;
    if (rest > 0 && rest <= this.#buf.length / 2) {
      if (!(await this.fill(rest))) return false;
      dest.set(this.#buf.subarray(this.#start, this.#start + rest), done);
      this.consume(rest);
      return true;
    }
    while (done < dest.length) {
      const got = await this.#src.read(dest.subarray(done));
      if (got === null) return false;
      done += got;
    }
    return true;
  }

  /** Reads and discards `n` bytes; false when the peer closed first. */
  async skip(n: number): Promise<boolean> {
    let left = n;
    while (left > 0) {
      if (this.buffered === 0 && !(await this.fill(1))) return false;
      const step = Math.min(left, this.buffered);
      this.consume(step);
      left -= step;
    }
    return true;
  }
}
