/**
 * A segmented bitmap of regions: one bit per region, stored in fixed-size segments so that only
 * segments holding set bits take memory (or KV entries, in the tracker).
 *
 * Capacity arithmetic, at the default 64 KiB region:
 *   regionsPerSegment = 1024 bits = 128 bytes per segment, covering 64 MiB of volume
 *   1 TiB volume = 16 Mi regions = 16 384 segments = 2 MiB of bitmap when every region is dirty
 * 1024 regions per segment keeps the tracker's per-segment mark-time record (24 bytes a dirty region,
 * 24 KiB at most) well inside Deno KV's 64 KiB value limit, and ~30 segments inside one 800 KiB atomic.
 */
import type { RegionRun } from "./extent.ts";

/** Regions per bitmap segment (a multiple of 8). */
export const regionsPerSegment = 1024;
/** Bytes of one bitmap segment. */
export const segmentBytes = regionsPerSegment / 8;

/** Sets `count` bits from bit `from` in `bits`; returns how many were newly set. */
export function setBits(bits: Uint8Array, from: number, count: number): number {
  let added = 0;
  for (let i = from; i < from + count; i++) {
    const mask = 1 << (i & 7);
    if ((bits[i >> 3] & mask) === 0) {
      bits[i >> 3] |= mask;
      added++;
    }
  }
  return added;
}

/** Clears `count` bits from bit `from`; returns how many were set before. */
export function clearBits(bits: Uint8Array, from: number, count: number): number {
  let removed = 0;
  for (let i = from; i < from + count; i++) {
    const mask = 1 << (i & 7);
    if ((bits[i >> 3] & mask) !== 0) {
      bits[i >> 3] &= ~mask;
      removed++;
    }
  }
  return removed;
}

/** True when bit `i` is set. */
export function testBit(bits: Uint8Array, i: number): boolean {
  return (bits[i >> 3] & (1 << (i & 7))) !== 0;
}

/** Number of set bits. */
export function popcount(bits: Uint8Array): number {
  let n = 0;
  for (let b of bits) {
    while (b) {
      b &= b - 1;
      n++;
    }
  }
  return n;
}

/** Runs of consecutive set bits, as bit indexes within `bits`. */
export function* bitRuns(bits: Uint8Array): Generator<RegionRun> {
  const total = bits.length * 8;
  let i = 0;
  while (i < total) {
    if (bits[i >> 3] === 0 && (i & 7) === 0) {
      i += 8;
      continue;
    }
    if (!testBit(bits, i)) {
      i++;
      continue;
    }
    const first = i;
    while (i < total && testBit(bits, i)) i++;
    yield { first, count: i - first };
  }
}

/** Splits a run of regions into per-segment pieces: [segment index, bit offset, count]. */
export function* segmentPieces(run: RegionRun): Generator<[number, number, number]> {
  let region = run.first;
  const end = run.first + run.count;
  while (region < end) {
    const segment = Math.floor(region / regionsPerSegment);
    const bit = region - segment * regionsPerSegment;
    const count = Math.min(end - region, regionsPerSegment - bit);
    yield [segment, bit, count];
    region += count;
  }
}

/** An in-memory segmented bitmap over region indexes; empty segments are dropped. */
export class DirtyBitmap {
  readonly #segments = new Map<number, Uint8Array>();
  #count = 0;

  /** Marks the regions of `run`; returns how many were newly marked. */
  set(run: RegionRun): number {
    let added = 0;
    for (const [segment, bit, count] of segmentPieces(run)) {
      let bits = this.#segments.get(segment);
      if (!bits) this.#segments.set(segment, bits = new Uint8Array(segmentBytes));
      added += setBits(bits, bit, count);
    }
    this.#count += added;
    return added;
  }

  /** Unmarks the regions of `run`; returns how many were marked before. */
  clear(run: RegionRun): number {
    let removed = 0;
    for (const [segment, bit, count] of segmentPieces(run)) {
      const bits = this.#segments.get(segment);
      if (!bits) continue;
      removed += clearBits(bits, bit, count);
      if (bits.every((b) => b === 0)) this.#segments.delete(segment);
    }
    this.#count -= removed;
    return removed;
  }

  /** True when `region` is marked. */
  has(region: number): boolean {
    const segment = Math.floor(region / regionsPerSegment);
    const bits = this.#segments.get(segment);
    return bits !== undefined && testBit(bits, region - segment * regionsPerSegment);
  }

  /** True when every region of `run` is marked. */
  hasAll(run: RegionRun): boolean {
    for (let r = run.first; r < run.first + run.count; r++) if (!this.has(r)) return false;
    return true;
  }

  /** Number of marked regions. */
  get size(): number {
    return this.#count;
  }

  /** Removes every mark. */
  reset(): void {
    this.#segments.clear();
    this.#count = 0;
  }

  /** Runs of marked regions in ascending order, merged across segment boundaries. */
  *runs(): Generator<RegionRun> {
    let pending: RegionRun | undefined;
    for (const segment of [...this.#segments.keys()].sort((a, b) => a - b)) {
      const base = segment * regionsPerSegment;
      for (const r of bitRuns(this.#segments.get(segment)!)) {
        const first = base + r.first;
        if (pending && pending.first + pending.count === first) {
          pending.count += r.count;
        } else {
          if (pending) yield pending;
          pending = { first, count: r.count };
        }
      }
    }
    if (pending) yield pending;
  }
}
