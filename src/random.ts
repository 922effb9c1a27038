/**
 * A seeded random source (mulberry32), passed in wherever randomness matters, so that a failing
 * scenario, test or benchmark can be replayed from its seed.
 */

/** A seeded PRNG (mulberry32), so a failing scenario can be replayed from its seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `length` pseudo-random bytes from `rand`. */
export function randomBytes(rand: () => number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i += 4) {
    const v = (rand() * 4294967296) >>> 0;
    out[i] = v;
    if (i + 1 < length) out[i + 1] = v >>> 8;
    if (i + 2 < length) out[i + 2] = v >>> 16;
    if (i + 3 < length) out[i + 3] = v >>> 24;
  }
  return out;
}
