/**
 * The journal record codec: one mirror write (or zeroing) of one volume, checksummed with
 * zlib's CRC-32 (native in Deno: several GB/s, so checking a record costs little).
 *
 * The same framing is the body of a backup write batch (`POST /v1/volumes/{name}/writes`: records
 * back to back) and the on-disk journal, so the backup verifies a batch once and appends its bytes
 * unchanged. Little-endian layout:
 *
 *   0   u32  magic 0x524a4d54 ("TMJR")
 *   4   u8   version (1)
 *   5   u8   kind: 1 write (payload follows), 2 zero (no payload), 3 cycle begin, 4 cycle
 *            commit (issue 10: markers of a consistent resync, backup/cycle_stage.ts; offset 0,
 *            length 1, no payload)
 *   6   u16  volume name length N (1..64)
 *   8   u64  byte offset on the volume
 *   16  u32  length in bytes (> 0; the payload length for a write)
 *   20  u32  CRC-32 of bytes 0..20, the name and the payload
 *   24  N    volume name (ASCII)
 *   24+N     payload (length bytes for a write, none for a zero)
 */
import { crc32 } from "node:zlib";
import { recordHeaderBytes, recordPayloadBytesMax, volumeNameBytesMax } from "./limits.ts";

/** The header size is part of the format; its value lives with the bounds it adds up to. */
export { recordHeaderBytes };

export const recordMagic = 0x524a4d54;
export const recordVersion = 1;

export type RecordKind = "write" | "zero" | "cycle-begin" | "cycle-commit";

/** Record kinds as stored, and back. */
const kindCodes: Record<RecordKind, number> = {
  "write": 1,
  "zero": 2,
  "cycle-begin": 3,
  "cycle-commit": 4,
};
const kindsByCode: RecordKind[] = ["write", "write", "zero", "cycle-begin", "cycle-commit"];

/** True for the markers that open and commit a cycle (they carry no data to apply). */
export function isCycleMarker(kind: RecordKind): kind is "cycle-begin" | "cycle-commit" {
  return kind === "cycle-begin" || kind === "cycle-commit";
}

/** Encodes the marker that opens (`cycle-begin`) or commits (`cycle-commit`) a volume's cycle. */
export function encodeCycleMarker(
  kind: "cycle-begin" | "cycle-commit",
  volume: string,
): Uint8Array {
  return encodeRecord({ kind, volume, offset: 0, length: 1 });
}

/** A decoded record; `data` is a view into the buffer it was decoded from. */
export interface JournalRecord {
  kind: RecordKind;
  volume: string;
  offset: number;
  length: number;
  /** The bytes to write; empty for a zero record. */
  data: Uint8Array;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

const noBytes = new Uint8Array(0);
let lastEncodedName = "";
let lastEncodedNameBytes = noBytes;

/** The encoded name; records of one volume are encoded back to back, so the last is kept. */
function nameBytes(volume: string): Uint8Array {
  if (volume !== lastEncodedName || lastEncodedNameBytes.length === 0) {
    lastEncodedNameBytes = encoder.encode(volume);
    lastEncodedName = volume;
  }
  return lastEncodedNameBytes;
}

/** Bytes one record occupies when encoded. */
export function encodedRecordBytes(volume: string, kind: RecordKind, length: number): number {
  return recordHeaderBytes + volume.length + (kind === "write" ? length : 0);
}

/** Encodes a record into `out` at `pos` (or a new buffer); returns the bytes written. */
export function encodeRecord(
  rec: Omit<JournalRecord, "data"> & { data?: Uint8Array },
  out?: Uint8Array,
  pos = 0,
): Uint8Array {
  const { name, payload } = checkRecord(rec);
  const total = recordHeaderBytes + name.length + payload.length;
  const buf = out ?? new Uint8Array(total);
  const view = writeHeader(rec, name, buf, pos);
  buf.set(payload, pos + recordHeaderBytes + name.length);
  let crc = crc32(buf.subarray(pos, pos + 20));
  crc = crc32(buf.subarray(pos + recordHeaderBytes, pos + total), crc);
  view.setUint32(20, crc, true);
  return buf.subarray(pos, pos + total);
}

/**
 * Encodes a record's header and name into `out` at `pos`, its checksum covering `rec.data` where
 * it is: the payload is left for the caller to send from there (it must follow these bytes
 * unchanged). Returns the bytes written, the record without its payload.
 */
export function encodeRecordHead(
  rec: Omit<JournalRecord, "data"> & { data?: Uint8Array },
  out: Uint8Array,
  pos: number,
): Uint8Array {
  const { name, payload } = checkRecord(rec);
  const view = writeHeader(rec, name, out, pos);
  const end = pos + recordHeaderBytes + name.length;
  let crc = crc32(out.subarray(pos, pos + 20));
  crc = crc32(out.subarray(pos + recordHeaderBytes, end), crc);
  if (payload.length > 0) crc = crc32(payload, crc);
  view.setUint32(20, crc, true);
  return out.subarray(pos, end);
}

/** Writes a checked record's header fields (not its checksum) and name at `pos` of `buf`. */
function writeHeader(
  rec: Omit<JournalRecord, "data">,
  name: Uint8Array,
  buf: Uint8Array,
  pos: number,
): DataView {
  const view = new DataView(buf.buffer, buf.byteOffset + pos, recordHeaderBytes);
  view.setUint32(0, recordMagic, true);
  view.setUint8(4, recordVersion);
  view.setUint8(5, kindCodes[rec.kind]);
  view.setUint16(6, name.length, true);
  // Two halves instead of a BigInt per record (the offset is checked below 2^53).
  view.setUint32(8, rec.offset % 0x1_0000_0000, true);
  view.setUint32(12, Math.floor(rec.offset / 0x1_0000_0000), true);
  view.setUint32(16, rec.length, true);
  buf.set(name, pos + recordHeaderBytes);
  return view;
}

/**
 * Refuses what the decoder would refuse, naming the bad value, before anything is encoded or sent:
 * a sender checks each record when it is handed one, so a bad record fails alone.
 */
export function checkRecord(
  rec: Omit<JournalRecord, "data"> & { data?: Uint8Array },
): { name: Uint8Array; payload: Uint8Array } {
  const name = nameBytes(rec.volume);
  // A non-ASCII name encodes to more bytes than characters, which encodedRecordBytes counts.
  if (name.length < 1 || name.length > volumeNameBytesMax || name.length !== rec.volume.length) {
    throw new RangeError(`Volume name "${rec.volume}" must be 1 to 64 ASCII bytes`);
  }
  const payload = rec.kind === "write" ? rec.data ?? noBytes : noBytes;
  if (rec.kind === "write" && payload.length !== rec.length) {
    throw new RangeError(`Write record length ${rec.length} differs from data ${payload.length}`);
  }
  if (!Number.isSafeInteger(rec.offset) || rec.offset < 0) {
    throw new RangeError(`Record offset ${rec.offset} must be a whole number from 0 to 2^53 - 1`);
  }
  if (!(rec.kind in kindCodes)) throw new RangeError(`Record kind "${rec.kind}" is unknown`);
  if (!Number.isInteger(rec.length) || rec.length <= 0 || rec.length > 0xffff_ffff) {
    throw new RangeError(`Record length ${rec.length} must be from 1 to 4294967295`);
  }
  if (rec.kind === "write" && rec.length > recordPayloadBytesMax) {
    throw new RangeError(`Record length ${rec.length} exceeds ${recordPayloadBytesMax}`);
  }
  return { name, payload };
}

/** What decoding the bytes at a position found. */
export type DecodeResult =
  | { ok: true; record: JournalRecord; next: number }
  /** Fewer bytes remain than the record needs: a torn tail in a journal. */
  | { ok: false; incomplete: true; reason: string }
  /** The bytes are not a valid record (bad magic, version, kind, name or checksum). */
  | { ok: false; incomplete: false; reason: string };

/**
 * Decodes the record at `pos` of `buf`, verifying its checksum unless `verifyChecksum` is false:
 * only for bytes verified already and unchanged since (the backup's apply worker takes batches
 * the link or the HTTP route verified on receipt; replay verifies what it reads from disk).
 */
export function decodeRecord(buf: Uint8Array, pos: number, verifyChecksum = true): DecodeResult {
  if (buf.length - pos < recordHeaderBytes) {
    return { ok: false, incomplete: true, reason: `Record header at byte ${pos} is cut short` };
  }
  const view = new DataView(buf.buffer, buf.byteOffset + pos, recordHeaderBytes);
  const magic = view.getUint32(0, true);
  if (magic !== recordMagic) {
    return {
      ok: false,
      incomplete: false,
      reason: `Bad record magic 0x${magic.toString(16)} at byte ${pos}`,
    };
  }
  const version = view.getUint8(4);
  if (version !== recordVersion) {
    return {
      ok: false,
      incomplete: false,
      reason: `Unknown record version ${version} at byte ${pos}`,
    };
  }
  const kindByte = view.getUint8(5);
  if (kindByte < 1 || kindByte > 4) {
    return {
      ok: false,
      incomplete: false,
      reason: `Unknown record kind ${kindByte} at byte ${pos}`,
    };
  }
  const kind = kindsByCode[kindByte];
  const nameBytes = view.getUint16(6, true);
  const offset = view.getBigUint64(8, true);
  const length = view.getUint32(16, true);
  if (nameBytes < 1 || nameBytes > volumeNameBytesMax) {
    return {
      ok: false,
      incomplete: false,
      reason: `Bad volume name length ${nameBytes} at byte ${pos}`,
    };
  }
  if (offset > BigInt(Number.MAX_SAFE_INTEGER) || length === 0) {
    return {
      ok: false,
      incomplete: false,
      reason: `Bad record range ${offset}+${length} at byte ${pos}`,
    };
  }
  if (kind === "write" && length > recordPayloadBytesMax) {
    return {
      ok: false,
      incomplete: false,
      reason: `Record length ${length} exceeds ${recordPayloadBytesMax}`,
    };
  }
  const payloadBytes = kind === "write" ? length : 0;
  const end = pos + recordHeaderBytes + nameBytes + payloadBytes;
  if (end > buf.length) {
    return { ok: false, incomplete: true, reason: `Record at byte ${pos} is cut short` };
  }
  if (verifyChecksum) {
    let crc = crc32(buf.subarray(pos, pos + 20));
    crc = crc32(buf.subarray(pos + recordHeaderBytes, end), crc);
    if (crc !== view.getUint32(20, true)) {
      return { ok: false, incomplete: false, reason: `Record checksum mismatch at byte ${pos}` };
    }
  }
  const nameStart = pos + recordHeaderBytes;
  return {
    ok: true,
    record: {
      kind,
      volume: volumeName(buf, nameStart, nameBytes),
      offset: Number(offset),
      length,
      data: buf.subarray(nameStart + nameBytes, end),
    },
    next: end,
  };
}

/**
 * Calls `fn(volume, recordBytes)` for each record of a batch already verified (headers only, no
 * checksum: the bytes were checked when they were admitted). Counting per volume without decoding
 * payloads, e.g. for the backup's per-volume lag.
 */
export function forEachRecordHeader(
  buf: Uint8Array,
  fn: (volume: string, recordBytes: number) => void,
): void {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let pos = 0;
  while (buf.length - pos >= recordHeaderBytes) {
    const kind = kindsByCode[view.getUint8(pos + 5)];
    const nameBytes = view.getUint16(pos + 6, true);
    const payloadBytes = kind === "write" ? view.getUint32(pos + 16, true) : 0;
    const bytes = recordHeaderBytes + nameBytes + payloadBytes;
    fn(volumeName(buf, pos + recordHeaderBytes, nameBytes), bytes);
    pos += bytes;
  }
}

/** The name decoded last, and its bytes (see `volumeName`). */
let lastDecodedNameBytes = new Uint8Array(0);
let lastDecodedName = "";

/**
 * The volume name of `length` bytes at `start` of `buf`. Records mostly name the volume the
 * record before named: a name equal, byte for byte, to the last one decoded is not decoded again
 * (decoding costs a call into the runtime per record, issue 8).
 */
function volumeName(buf: Uint8Array, start: number, length: number): string {
  if (length === lastDecodedNameBytes.length) {
    let same = true;
    for (let i = 0; i < length; i++) {
      if (buf[start + i] !== lastDecodedNameBytes[i]) {
        same = false;
        break;
      }
    }
    if (same) return lastDecodedName;
  }
  lastDecodedNameBytes = buf.slice(start, start + length);
  lastDecodedName = decoder.decode(lastDecodedNameBytes);
  return lastDecodedName;
}
