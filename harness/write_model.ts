/**
 * What every byte of a volume must hold, after a workload whose writes may fail, for the fault
 * simulation. A write counts only once it was acknowledged; a write that failed or timed out may
 * or may not have reached the primary, so each byte it covered is "old or new" until a later
 * acknowledged write covers it again. The check accepts exactly those values, nothing else.
 *
 * Callers keep concurrent writes to disjoint ranges (one writer per slice of the volume), so the
 * order of two writes to one byte is the order they were issued in.
 */

/** One write that failed: its bytes are allowed where no later acknowledged write covers them. */
interface FailedWrite {
  /** Issue order, compared with `#version` of each byte. */
  index: number;
  offset: number;
  data: Uint8Array;
}

/** The first byte of the primary that no model value explains. */
export interface ModelMismatch {
  offset: number;
  actual: number;
  expected: number;
  /** Values failed writes allow there (besides `expected`). */
  allowed: number[];
}

export class WriteModel {
  /** Bytes of the last acknowledged write of each byte (zero: never written; sparse image). */
  readonly #value: Uint8Array;
  /** Issue index of the write `#value` comes from (0 before any). */
  readonly #version: Float64Array;
  #failed: FailedWrite[] = [];
  #next = 1;
  /** Acknowledged writes since the model was made. */
  writesAcknowledged = 0;
  /** Failed (unknown outcome) writes since the model was made. */
  writesFailed = 0;
  /** Acknowledged writes whose bytes a `check` has verified (each counted once). */
  writesChecked = 0;
  #unchecked = 0;

  constructor(readonly sizeBytes: number) {
    this.#value = new Uint8Array(sizeBytes);
    this.#version = new Float64Array(sizeBytes);
  }

  /** Takes an issue index before the write is sent (the order writes to one byte happen in). */
  issue(): number {
    return this.#next++;
  }

  /** The write `index` was acknowledged: its bytes are what the primary must hold. */
  acknowledged(index: number, offset: number, data: Uint8Array): void {
    this.#checkRange(offset, data.length);
    for (let i = 0; i < data.length; i++) {
      if (this.#version[offset + i] > index) continue; // a later write already owns the byte
      this.#value[offset + i] = data[i];
      this.#version[offset + i] = index;
    }
    this.writesAcknowledged++;
    this.#unchecked++;
  }

  /** The write `index` failed or timed out: its bytes may or may not be on the primary. */
  failed(index: number, offset: number, data: Uint8Array): void {
    this.#checkRange(offset, data.length);
    this.#failed.push({ index, offset, data });
    this.writesFailed++;
  }

  /**
   * Compares `primary` (the whole image) with the model; returns the first byte no allowed value
   * explains, or null. When it matches, every "old or new" byte becomes what the primary holds,
   * so unknown ranges do not pile up across rounds (callers check only when no write is in flight).
   */
  check(primary: Uint8Array): ModelMismatch | null {
    if (primary.length !== this.sizeBytes) {
      throw new RangeError(
        `Primary image is ${primary.length} bytes, the model expects ${this.sizeBytes}`,
      );
    }
    // Allowed values of each byte a failed write covers, newer than its acknowledged value.
    for (let b = 0; b < primary.length; b++) {
      if (primary[b] === this.#value[b]) continue;
      const allowed = this.#allowedAt(b);
      if (!allowed.includes(primary[b])) {
        return { offset: b, actual: primary[b], expected: this.#value[b], allowed };
      }
    }
    for (const w of this.#failed) {
      for (let i = 0; i < w.data.length; i++) {
        const b = w.offset + i;
        if (this.#version[b] < w.index) {
          this.#value[b] = primary[b];
          this.#version[b] = w.index;
        }
      }
    }
    this.#failed = [];
    this.writesChecked += this.#unchecked;
    this.#unchecked = 0;
    return null;
  }

  #allowedAt(b: number): number[] {
    const allowed: number[] = [];
    for (const w of this.#failed) {
      if (w.index > this.#version[b] && b >= w.offset && b < w.offset + w.data.length) {
        allowed.push(w.data[b - w.offset]);
      }
    }
    return allowed;
  }

  #checkRange(offset: number, length: number): void {
    if (offset < 0 || length <= 0 || offset + length > this.sizeBytes) {
      throw new RangeError(
        `Write at ${offset}+${length} lies outside the modelled ${this.sizeBytes} bytes`,
      );
    }
  }
}
