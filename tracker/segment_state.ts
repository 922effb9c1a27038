/**
 * One bitmap segment of a volume: its dirty bits and, for every dirty region, when it was first and
 * last marked and the sequence number of its last mark.
 *
 * Stored form (two KV values, see kv_layout.ts): the 128-byte bitmap, and a packed mark record
 * holding, for each set bit in bit order, three little-endian f64: firstMarkedAt, lastMarkedAt,
 * lastMarkSeq. 24 bytes a dirty region, so 24 KiB for a fully dirty segment of 1024 regions.
 * Working form: the bits plus three dense Float64Arrays indexed by bit (24 KiB), decoded only
 * for the segments a commit batch or a log page is working on.
 */
import assert from "node:assert/strict";
import { popcount, regionsPerSegment, segmentBytes, testBit } from "../src/dirty_bitmap.ts";

/** Bytes one dirty region takes in a packed mark record. */
export const markEntryBytes = 24;
/** Largest packed mark record: every region of the segment dirty (24 576 bytes). */
export const markRecordBytesMax = regionsPerSegment * markEntryBytes;

/** A segment as stored in KV; absent (null) when no region of it is dirty. */
export interface StoredSegment {
  bits: Uint8Array;
  record: Uint8Array;
}

/** The outcome of clearing part of a segment against a token. */
export interface ClearCount {
  cleared: number;
  kept: number;
}

/** A segment decoded for work. */
export class SegmentState {
  readonly bits = new Uint8Array(segmentBytes);
  // One buffer for the three (a segment is decoded on every commit that touches it, and each
  // typed array's own buffer was most of the cost of a decode).
  readonly #times = new Float64Array(3 * regionsPerSegment);
  readonly firstAt = this.#times.subarray(0, regionsPerSegment);
  readonly lastAt = this.#times.subarray(regionsPerSegment, 2 * regionsPerSegment);
  readonly lastSeq = this.#times.subarray(2 * regionsPerSegment);
  /** Number of dirty regions. */
  count = 0;

  /** Decodes a stored segment; `what` names it in the error when the pair does not match. */
  static decode(stored: StoredSegment | null, what: string): SegmentState {
    const s = new SegmentState();
    if (!stored) return s;
    const { bits, record } = stored;
    const dirty = popcount(bits);
    if (bits.length !== segmentBytes || record.length !== dirty * markEntryBytes) {
      throw new Error(
        `Segment ${what} is corrupt: ${bits.length} bitmap bytes (want ${segmentBytes}) and ` +
          `${record.length} mark record bytes (want ${dirty * markEntryBytes})`,
      );
    }
    s.bits.set(bits);
    s.count = dirty;
    const order = setBitIndexes(bits);
    const view = new DataView(record.buffer, record.byteOffset, record.byteLength);
    for (let i = 0, at = 0; i < dirty; i++, at += markEntryBytes) {
      const bit = order[i];
      s.firstAt[bit] = view.getFloat64(at, true);
      s.lastAt[bit] = view.getFloat64(at + 8, true);
      s.lastSeq[bit] = view.getFloat64(at + 16, true);
    }
    return s;
  }

  /** The stored form, or null when no region is dirty (the keys are then deleted). */
  encode(): StoredSegment | null {
    if (this.count === 0) return null;
    const record = new Uint8Array(this.count * markEntryBytes);
    const view = new DataView(record.buffer);
    const order = setBitIndexes(this.bits);
    assert.equal(order.length, this.count, "popcount and dirty count disagree");
    for (let i = 0, at = 0; i < order.length; i++, at += markEntryBytes) {
      const bit = order[i];
      view.setFloat64(at, this.firstAt[bit], true);
      view.setFloat64(at + 8, this.lastAt[bit], true);
      view.setFloat64(at + 16, this.lastSeq[bit], true);
    }
    return { bits: this.bits.slice(), record };
  }

  /** True when region `bit` is dirty. */
  has(bit: number): boolean {
    return testBit(this.bits, bit);
  }

  /**
   * Marks `count` regions from `bit` at `time` with sequence `seq`; returns how many were newly
   * dirty. A dirty region keeps its first-marked time; its last-marked time never goes backwards.
   */
  mark(bit: number, count: number, time: number, seq: number): number {
    assert.ok(bit >= 0 && count > 0 && bit + count <= regionsPerSegment, "mark inside segment");
    let added = 0;
    for (let i = bit; i < bit + count; i++) {
      const mask = 1 << (i & 7);
      if ((this.bits[i >> 3] & mask) === 0) {
        this.bits[i >> 3] |= mask;
        this.firstAt[i] = time;
        this.lastAt[i] = time;
        added++;
      } else if (time > this.lastAt[i]) {
        this.lastAt[i] = time;
      }
      this.lastSeq[i] = seq;
    }
    this.count += added;
    return added;
  }

  /**
   * Clears the dirty regions among `count` from `bit` whose last mark is no newer than `token`;
   * those marked after it stay dirty and are counted as kept.
   */
  clear(bit: number, count: number, token: number): ClearCount {
    assert.ok(bit >= 0 && count > 0 && bit + count <= regionsPerSegment, "clear inside segment");
    let cleared = 0;
    let kept = 0;
    for (let i = bit; i < bit + count; i++) {
      const mask = 1 << (i & 7);
      if ((this.bits[i >> 3] & mask) === 0) continue;
      if (this.lastSeq[i] <= token) {
        this.bits[i >> 3] &= ~mask;
        cleared++;
      } else {
        kept++;
      }
    }
    this.count -= cleared;
    return { cleared, kept };
  }

  /** Earliest first-marked time of the dirty regions; Infinity when none is dirty. */
  oldestMarkAt(): number {
    let oldest = Infinity;
    for (const bit of setBits(this.bits)) oldest = Math.min(oldest, this.firstAt[bit]);
    return oldest;
  }
}

/**
 * Indexes of the set bits, ascending, as an array (decode and encode run on every commit of a
 * segment, and a generator's per-bit cost was most of theirs).
 */
export function setBitIndexes(bits: Uint8Array): Uint16Array {
  const out = new Uint16Array(popcount(bits));
  let n = 0;
  for (let byte = 0; byte < bits.length; byte++) {
    let b = bits[byte];
    while (b !== 0) {
      const low = b & -b;
      out[n++] = byte * 8 + 31 - Math.clz32(low);
      b ^= low;
    }
  }
  return out;
}

/** Indexes of the set bits, ascending; skips clean bytes, so sparse segments cost little. */
export function* setBits(bits: Uint8Array): Generator<number> {
  for (let byte = 0; byte < bits.length; byte++) {
    let b = bits[byte];
    while (b !== 0) {
      const low = b & -b;
      yield byte * 8 + 31 - Math.clz32(low);
      b ^= low;
    }
  }
}

/** Earliest first-marked time in a packed mark record, without decoding the bitmap. */
export function oldestInRecord(record: Uint8Array): number {
  const view = new DataView(record.buffer, record.byteOffset, record.byteLength);
  let oldest = Infinity;
  for (let at = 0; at + markEntryBytes <= record.length; at += markEntryBytes) {
    oldest = Math.min(oldest, view.getFloat64(at, true));
  }
  return oldest;
}
