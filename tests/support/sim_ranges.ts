/**
 * Where the fault simulation's writers write. Writers never share a byte within a round (so the
 * order of two writes to one byte is the order one writer issued them in), but how they split the
 * volume changes per round: contiguous slices (large, multi-region writes) or interleaved stripes
 * (small writes of different writers in the same region at once: concurrent marks, shared
 * activity units, one range lock per stripe).
 */

export type RangeLayout = "slices" | "stripes";

export interface RangeArea {
  /** Bytes the writers share, from offset 0. */
  areaBytes: number;
  writers: number;
  writeBytesMax: number;
  /** Stripe size of the "stripes" layout. */
  stripeBytes: number;
}

/** A function drawing writer `w`'s next range from `rand`. */
export function rangePicker(
  layout: RangeLayout,
  w: number,
  area: RangeArea,
): (rand: () => number) => { offset: number; length: number } {
  if (layout === "slices") {
    const sliceBytes = Math.floor(area.areaBytes / area.writers);
    return (rand) => {
      // Half block-aligned, half any length at any byte offset.
      const length = rand() < 0.5
        ? 4096 * (1 + Math.floor(rand() * (area.writeBytesMax / 4096)))
        : 1 + Math.floor(rand() * area.writeBytesMax);
      return { offset: w * sliceBytes + Math.floor(rand() * (sliceBytes - length)), length };
    };
  }
  const stripes = Math.floor(area.areaBytes / area.stripeBytes);
  const mine = Math.floor((stripes - w - 1) / area.writers) + 1; // stripes w, w + writers, ...
  return (rand) => {
    const stripe = w + area.writers * Math.floor(rand() * mine);
    const length = 1 + Math.floor(rand() * area.stripeBytes);
    const offset = stripe * area.stripeBytes + Math.floor(rand() * (area.stripeBytes - length + 1));
    return { offset, length };
  };
}
