/**
 * Byte ranges and the regions they touch.
 *
 * Offsets and lengths are JavaScript numbers holding whole bytes; every value is checked to be a
 * safe integer, which bounds volumes at 2^53 bytes (8 PiB), far beyond any raw image we serve.
 * A region is the tracking granularity: a power of two, default 64 KiB.
 */

/** A byte range on a volume: `length` bytes starting at `offset`. */
export interface Extent {
  offset: number;
  length: number;
}

/** A run of whole regions: `count` regions starting at region index `first`. */
export interface RegionRun {
  first: number;
  count: number;
}

/** Default tracking granularity. */
export const regionBytesDefault = 64 * 1024;
/** Smallest and largest region sizes accepted: one sector up to 64 MiB. */
export const regionBytesMin = 512;
export const regionBytesMax = 64 * 1024 * 1024;

/** True when `n` is a positive power of two. */
export function isPowerOfTwo(n: number): boolean {
  // Math.log2 rounds: log2(2^53 - 1) is exactly 53, so check the power itself.
  return Number.isSafeInteger(n) && n > 0 && 2 ** Math.round(Math.log2(n)) === n;
}

/** Throws unless `regionBytes` is a power of two within the accepted bounds. */
export function checkRegionBytes(regionBytes: number): void {
  if (!isPowerOfTwo(regionBytes) || regionBytes < regionBytesMin || regionBytes > regionBytesMax) {
    throw new RangeError(
      `Region size ${regionBytes} must be a power of two from ${regionBytesMin} to ${regionBytesMax} bytes`,
    );
  }
}

/**
 * Throws a RangeError naming the values unless `offset`+`length` lies inside a volume of `size`
 * bytes, with `length` > 0. `what` names the volume in the message.
 */
export function checkRange(offset: number, length: number, size: number, what: string): void {
  if (!Number.isSafeInteger(offset) || offset < 0) {
    throw new RangeError(`Offset ${offset} on ${what} must be a whole number of bytes >= 0`);
  }
  if (!Number.isSafeInteger(length) || length <= 0) {
    throw new RangeError(
      `Length ${length} at offset ${offset} on ${what} must be a whole number > 0`,
    );
  }
  const end = offset + length;
  if (!Number.isSafeInteger(end) || end > size) {
    throw new RangeError(`Range ${offset}+${length} exceeds ${what} size ${size}`);
  }
}

/** The run of regions that byte range `offset`+`length` touches (partly or wholly). */
export function regionsOf(offset: number, length: number, regionBytes: number): RegionRun {
  if (length <= 0) return { first: Math.floor(offset / regionBytes), count: 0 };
  const first = Math.floor(offset / regionBytes);
  const last = Math.floor((offset + length - 1) / regionBytes);
  return { first, count: last - first + 1 };
}

/** Number of regions a volume of `sizeBytes` has; the last one may be partial. */
export function regionCount(sizeBytes: number, regionBytes: number): number {
  return Math.ceil(sizeBytes / regionBytes);
}

/** Byte extent of a run of regions, cut at the end of the volume. */
export function extentOfRegions(run: RegionRun, regionBytes: number, sizeBytes: number): Extent {
  const offset = run.first * regionBytes;
  const end = Math.min((run.first + run.count) * regionBytes, sizeBytes);
  return { offset, length: Math.max(0, end - offset) };
}

/** Sorts and merges overlapping or touching extents into the fewest extents. */
export function mergeExtents(extents: readonly Extent[]): Extent[] {
  const sorted = extents.filter((e) => e.length > 0).toSorted((a, b) => a.offset - b.offset);
  const out: Extent[] = [];
  for (const e of sorted) {
    const last = out.at(-1);
    if (last && e.offset <= last.offset + last.length) {
      last.length = Math.max(last.length, e.offset + e.length - last.offset);
    } else {
      out.push({ offset: e.offset, length: e.length });
    }
  }
  return out;
}

/** True when the two byte ranges share at least one byte. */
export function overlaps(a: Extent, b: Extent): boolean {
  return a.offset < b.offset + b.length && b.offset < a.offset + a.length;
}

/** Parses a byte size: a whole number, optionally with a binary suffix (KiB, MiB, GiB, TiB) or K/M/G/T. */
export function parseSize(text: string): number {
  const m = /^\s*(\d+)\s*(|b|k|kib|m|mib|g|gib|t|tib)\s*$/i.exec(text);
  if (!m) {
    throw new RangeError(
      `Size "${text}" is not a byte count or a number with a binary suffix (KiB, MiB, GiB, TiB)`,
    );
  }
  const unit = m[2].toLowerCase().replace(/ib$|b$/, "");
  const scale = { "": 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 }[unit]!;
  const bytes = Number(m[1]) * scale;
  if (!Number.isSafeInteger(bytes)) throw new RangeError(`Size "${text}" is too large`);
  return bytes;
}

/** Formats a byte count with a binary suffix, for humans. */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${bytes} B` : `${v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${units[i]}`;
}
