/**
 * Journal replay at start-up: every record still in the journal is applied again, in the order it
 * was written.
 *
 * Replaying a record that was already applied is harmless because order is preserved: each byte
 * ends up holding the last record (in journal order) that wrote it, which is exactly what it held
 * before the crash, or newer. That holds only over a contiguous run of segments ending at the last
 * one, which is why replay starts after the last gap in the numbering (see `replayStart`).
 *
 * Segments are preallocated and zero-filled (journal.ts), so a run of zeros from a position to the
 * end of a segment is where its records end, in any segment, and is neither damage nor a tear.
 *
 * What any other failure to decode means depends on where it is:
 * - in the last segment it is usually a torn write: the crash came in the middle of a group that
 *   was never synced, so no record from there on was acknowledged. The segment is truncated there
 *   (logged) and nothing from there on is applied. Page-cache writeback is not ordered, so a valid
 *   record after the tear is possible and still unacknowledged; it is dropped too.
 *   But a tear has a shape: the segment was all zeros before the group was written, and a disk
 *   writes whole sectors, so a torn group leaves unwritten sectors that are still zero. When a
 *   valid record follows the failure and the damaged bytes before it hold no such zero sector
 *   (a flipped bit, garbage, a wrong checksum), no tear explains it: it is corruption of bytes that
 *   may have been synced, and the records after it may have been acknowledged. Dropping them would
 *   lose acknowledged writes silently, so the backup refuses to start and says how to proceed.
 * - in an earlier segment it is corruption: a segment is synced in full before the next one is
 *   created, so a closed segment never has a torn tail. The backup refuses to start.
 *
 * What replay cannot see: a record is checksummed alone, so a whole valid record copied elsewhere
 * (a duplicate) is replayed like any other, and zeros from a record boundary to the end of a
 * closed segment read as its preallocated tail. Neither is produced by a crash.
 */
import type { JournalRecord } from "../src/journal_record.ts";
import { decodeRecord, recordMagic } from "../src/journal_record.ts";
import { listSegments, segmentPath } from "./segment_files.ts";
import { logLine } from "../src/events.ts";

/** What replay found; `Journal.open` takes it as proof that every segment was applied. */
export interface ReplayResult {
  /** Every segment id in the directory, ascending (including ones before a gap). */
  segmentIds: number[];
  /** The segments replayed: a contiguous run ending at the last one. */
  replayedIds: number[];
  /** Size of the last segment after any torn tail was cut off; 0 when there is none. */
  lastSegmentBytes: number;
  /** Records applied again. */
  records: number;
  /** Bytes cut off the last segment as a torn write. */
  tornBytes: number;
}

/** Where a record lies in the journal: its segment and byte offset there. */
export interface JournalPosition {
  segment: number;
  offset: number;
}

/**
 * Applies one replayed record (`encoded`: its bytes as journaled, at `at`); throws when it cannot
 * (e.g. an unknown volume).
 */
export type ReplayApply = (record: JournalRecord, at: JournalPosition, encoded: Uint8Array) => void;

/**
 * The index in `ids` where replay starts. A segment is deleted only after every record in it and
 * before it was applied and synced, but deletions are not ordered on disk: after a crash an older
 * segment may reappear while a newer one is gone. Replaying that older one would put back data the
 * missing segment had overwritten, so everything before the last gap is skipped.
 */
export function replayStart(ids: readonly number[]): number {
  let start = 0;
  for (let i = 1; i < ids.length; i++) {
    if (ids[i] !== ids[i - 1] + 1) start = i;
  }
  return start;
}

/** Replays the journal in `dir` through `apply`; truncates a torn tail; throws on corruption. */
export async function replayJournal(
  dir: string,
  apply: ReplayApply,
  log: (message: string) => void = (m) => logLine("backup", "warn", m),
): Promise<ReplayResult> {
  const segmentIds = await listSegments(dir);
  const replayedIds = segmentIds.slice(replayStart(segmentIds));
  const result: ReplayResult = {
    segmentIds,
    replayedIds,
    lastSegmentBytes: 0,
    records: 0,
    tornBytes: 0,
  };
  for (const [i, id] of replayedIds.entries()) {
    const path = segmentPath(dir, id);
    const isLast = i === replayedIds.length - 1;
    // A segment is at most journalSegmentBytes plus one batch, so reading it whole is bounded.
    const bytes = await Deno.readFile(path);
    let pos = 0;
    while (pos < bytes.length) {
      const decoded = decodeRecord(bytes, pos);
      if (!decoded.ok && zeroFrom(bytes, pos)) break;
      if (!decoded.ok) {
        if (!isLast) {
          throw new Error(
            `Journal segment "${path}" is corrupt at byte ${pos} of ${bytes.length}: ` +
              `${decoded.reason}. A closed segment is never torn, so the backup refuses to start`,
          );
        }
        const later = nextValidRecord(bytes, pos + 1);
        if (later !== undefined && !hasUnwrittenSector(bytes, pos, later)) {
          throw new Error(
            `Journal segment "${path}" is corrupt at byte ${pos} of ${bytes.length}: ` +
              `${decoded.reason}, and a valid record follows at byte ${later}. A torn write ` +
              `leaves zero sectors and these damaged bytes have none, so the records after them ` +
              `may have been acknowledged: the backup refuses to start rather than drop them. ` +
              `To drop them anyway, truncate the segment to ${pos} bytes and start again; the ` +
              `writes they held may then be missing from the secondaries`,
          );
        }
        await truncateSegment(path, pos);
        result.tornBytes = bytes.length - pos;
        log(
          `Journal segment "${path}": dropped a torn tail of ${result.tornBytes} bytes at byte ` +
            `${pos} (${decoded.reason}${
              later === undefined ? "" : `; a valid record at byte ${later} went with it`
            }); it was never acknowledged`,
        );
        break;
      }
      try {
        apply(decoded.record, { segment: id, offset: pos }, bytes.subarray(pos, decoded.next));
      } catch (err) {
        throw new Error(
          `Journal segment "${path}" record at byte ${pos} cannot be replayed: ` +
            `${(err as Error).message}`,
        );
      }
      result.records++;
      pos = decoded.next;
    }
    if (isLast) result.lastSegmentBytes = pos;
  }
  return result;
}

/**
 * The smallest unit a disk writes whole. A torn write leaves whole sectors unwritten; 512 bytes is
 * the smallest sector there is, so this finds every tear whatever the disk's real sector size.
 */
export const sectorBytes = 512;

/** The first position from `from` on where a whole, valid record starts; undefined when none. */
export function nextValidRecord(bytes: Uint8Array, from: number): number | undefined {
  const first = recordMagic & 0xff; // the magic is stored little-endian
  for (let i = bytes.indexOf(first, from); i >= 0; i = bytes.indexOf(first, i + 1)) {
    if (i + 4 > bytes.length) return undefined;
    const magic = bytes[i] | bytes[i + 1] << 8 | bytes[i + 2] << 16 | bytes[i + 3] << 24;
    if (magic >>> 0 === recordMagic && decodeRecord(bytes, i).ok) return i;
  }
  return undefined;
}

/**
 * True when `bytes[from, to)` holds a piece, between sector boundaries, that is all zeros: what a
 * torn write leaves where a sector of the group never reached the disk. A valid record starts at
 * `to`, so the sector it starts in was written: a piece ending there mid-sector does not count.
 */
export function hasUnwrittenSector(bytes: Uint8Array, from: number, to: number): boolean {
  for (let start = from; start < to;) {
    const end = Math.min(to, (Math.floor(start / sectorBytes) + 1) * sectorBytes);
    if (end === to && to % sectorBytes !== 0) return false;
    let zero = true;
    for (let i = start; i < end && zero; i++) zero = bytes[i] === 0;
    if (zero) return true;
    start = end;
  }
  return false;
}

/** True when every byte of `bytes` from `pos` on is zero: the unwritten, preallocated tail. */
export function zeroFrom(bytes: Uint8Array, pos: number): boolean {
  // Eight bytes at a time where aligned; the tail is usually megabytes of zeros.
  let i = pos;
  while (i < bytes.length && (bytes.byteOffset + i) % 8 !== 0) if (bytes[i++] !== 0) return false;
  // A tail of fewer than 8 bytes can end unaligned: a BigUint64Array there would throw.
  if (i >= bytes.length) return true;
  const words = Math.floor((bytes.length - i) / 8);
  const view = new BigUint64Array(bytes.buffer, bytes.byteOffset + i, words);
  for (let w = 0; w < words; w++) if (view[w] !== 0n) return false;
  for (i += words * 8; i < bytes.length; i++) if (bytes[i] !== 0) return false;
  return true;
}

async function truncateSegment(path: string, bytes: number): Promise<void> {
  const file = await Deno.open(path, { write: true });
  try {
    await file.truncate(bytes);
    await file.syncData();
  } finally {
    file.close();
  }
}
