/**
 * Journal segment files on disk: `<data>/journal/00000000000000000001.log`, numbered from 1 and
 * always created with the next number, so the numbers say the order the records were written in.
 */
import { join } from "node:path";

/** Digits in a segment file name: 20 holds any u64, so names sort as numbers do. */
const segmentIdDigits = 20;
const segmentNamePattern = /^(\d{20})\.log$/;

/** The file name of segment `id`. */
export function segmentFileName(id: number): string {
  if (!Number.isSafeInteger(id) || id < 1) {
    throw new RangeError(`Segment id ${id} must be a whole number >= 1`);
  }
  return `${String(id).padStart(segmentIdDigits, "0")}.log`;
}

/** The path of segment `id` in `dir`. */
export function segmentPath(dir: string, id: number): string {
  return join(dir, segmentFileName(id));
}

/** The segment ids present in `dir`, ascending; other files are left alone. */
export async function listSegments(dir: string): Promise<number[]> {
  const ids: number[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const m = segmentNamePattern.exec(entry.name);
    if (m && entry.isFile) ids.push(Number(m[1]));
  }
  return ids.sort((a, b) => a - b);
}

/**
 * Makes the directory's entries (a created or removed file) durable: without it a new segment's
 * name can vanish in a crash even though its data was synced.
 */
export async function syncDir(dir: string): Promise<void> {
  const handle = await Deno.open(dir, { read: true });
  try {
    await handle.sync();
  } finally {
    handle.close();
  }
}
