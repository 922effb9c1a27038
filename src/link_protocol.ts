/**
 * The link: one persistent, pipelined binary stream from a host agent to the backup (TCP or a
 * unix socket), multiplexing every volume of the host. This file defines its framing once; both
 * ends (backup/link_server.ts, host/link/link_client.ts) encode and decode through it.
 *
 * Frame, little-endian, a fixed 24-byte header then the payload:
 *
 *   0   u32  magic 0x464c4d54 ("TMLF")
 *   4   u8   version (2; 1 is still read: see below)
 *   5   u8   type (see `FrameType`)
 *   6   u16  flags (0; reserved)
 *   8   u32  payload length in bytes (<= linkFrameBytesMax)
 *   12  u32  CRC-32 of bytes 0..12, bytes 16..24 and the payload
 *   16  u64  sequence number (RECORDS: the frame's own, 1, 2, 3... per connection;
 *            ACK / RECEIVED / HARDENED: the highest RECORDS sequence covered, cumulative)
 *   24       payload
 *
 * Types and payloads:
 * - HELLO (host → backup), JSON `LinkHello`: host id, ack mode, volumes with size and epoch, and
 *   (since version 2) the shared token when the host has one. A backup with a token refuses a
 *   HELLO without it or with a wrong one (ERROR 401, then close) before it registers anything.
 * - WELCOME (backup → host), JSON `LinkWelcome`: the credit granted and a result per volume.
 * - RECORDS (host → backup): journal records back to back exactly as the journal stores them
 *   (src/journal_record.ts), so the backup verifies them and appends the bytes unchanged.
 * - ACK (backup → host): every RECORDS frame up to `sequence` is durable in the journal.
 * - RECEIVED (backup → host, `received` mode): every frame up to `sequence` is received, verified
 *   and queued for the journal (not yet durable).
 * - HARDENED (backup → host, `received` mode): every frame up to `sequence` is now durable — seed
 *   002's hardening notice. In `durable` mode ACK says the same, so only ACK is sent.
 *   ACK, RECEIVED and HARDENED carry a u64 payload: the credit (see below) as of that moment.
 * - ERROR (either way), JSON `{status, message}`; the sender closes the connection after it.
 *
 * Versions: 2 added `token` to HELLO and nothing else, so a reader takes versions 1 and 2 alike
 * (`linkFrameVersionMin`); a version 1 host can only reach a backup without a token. The link
 * is not encrypted, like the HTTP routes and their bearer token: it runs on loopback or a unix
 * socket (every service binds 127.0.0.1).
 *
 * Credit: the backup grants a window of RECORDS payload bytes the host may have sent but not yet
 * seen durable (ACK or HARDENED), from its journal room and never above `linkInflightBytesMax`. A
 * host whose window is full waits; when the journal is full the backup grants 0 and the host
 * times out and falls back to the tracker, instead of every frame being refused.
 *
 * Capacity arithmetic: the disk syncs ~5.8k times/s at ~0.15 ms each. To keep the journal busy a
 * window must hold what arrives during one sync plus one round trip: at 3 GB/s (1 MiB records)
 * and ~2 ms that is ~6 MiB, so 32 MiB (`linkInflightBytesMax`) leaves room for ~5 group commits
 * in flight, and is ~3% of the default 1 GiB journal. A sender coalesces at most
 * `linkCoalesceBytesMax` (4 MiB: a thousand 4 KiB records, four 1 MiB ones) per frame, so several
 * frames share a window; a frame may still be as large as the largest single record
 * (`recordPayloadBytesMax`, 32 MiB, plus its header), which `linkFrameBytesMax` allows so that no
 * write needs splitting. A record larger than the credit goes alone when the whole window is free.
 */
import { crc32 } from "node:zlib";
import { recordPayloadBytesMax } from "./limits.ts";

export const linkFrameMagic = 0x464c4d54;
/** The version this code writes. */
export const linkFrameVersion = 2;
/** The oldest version this code reads (version 2 only added HELLO's `token`). */
export const linkFrameVersionMin = 1;
export const linkFrameHeaderBytes = 24;
/** Largest payload of one frame (one largest record and its header); larger is corrupt. */
export const linkFrameBytesMax = recordPayloadBytesMax + 64 * 1024;
/** Most record bytes a sender coalesces into one frame. */
export const linkCoalesceBytesMax = 4 * 1024 * 1024;
/** Largest credit window the backup grants (RECORDS bytes sent and not yet durable). */
export const linkInflightBytesMax = 32 * 1024 * 1024;
/** Default TCP port of the backup's link listener. */
export const linkPortDefault = 8704;

export const FrameType = {
  hello: 1,
  welcome: 2,
  records: 3,
  ack: 4,
  received: 5,
  hardened: 6,
  error: 7,
} as const;
export type FrameTypeCode = typeof FrameType[keyof typeof FrameType];

/** How the backup acknowledges a host's records. */
export type AckMode = "durable" | "received";

/** One volume a host announces in HELLO. */
export interface LinkVolume {
  name: string;
  sizeBytes: number;
  /** The connection's link epoch (backup/epoch_fence.ts). */
  epoch: number;
  /** The tracker's lease epoch the host holds the volume with; absent from older hosts (0). */
  leaseEpoch?: number;
}

/** HELLO payload. */
export interface LinkHello {
  hostId: string;
  ack: AckMode;
  volumes: LinkVolume[];
  /** The shared token (src/token.ts), when the host has one; a backup with one requires it. */
  token?: string;
}

/** WELCOME payload. */
export interface LinkWelcome {
  credit: number;
  volumes: { name: string; created: boolean }[];
}

/** ERROR payload. */
export interface LinkError {
  status: number;
  message: string;
}

/** A decoded frame; `payload` is a view into the bytes it was decoded from. */
export interface Frame {
  type: FrameTypeCode;
  flags: number;
  sequence: number;
  payload: Uint8Array;
}

/** What decoding at a position found. */
export type FrameDecode =
  | { ok: true; frame: Frame; next: number }
  | { ok: false; incomplete: true }
  | { ok: false; incomplete: false; reason: string };

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function frameCrc(buf: Uint8Array, pos: number, payloadBytes: number): number {
  let crc = crc32(buf.subarray(pos, pos + 12));
  crc = crc32(buf.subarray(pos + 16, pos + linkFrameHeaderBytes + payloadBytes), crc);
  return crc;
}

/** Writes a frame header for a payload already at `pos + 24` of `buf`, then its checksum. */
export function sealFrame(
  buf: Uint8Array,
  pos: number,
  type: FrameTypeCode,
  sequence: number,
  payloadBytes: number,
): Uint8Array {
  if (payloadBytes > linkFrameBytesMax) {
    throw new RangeError(`Frame payload ${payloadBytes} exceeds linkFrameBytesMax`);
  }
  if (!Number.isSafeInteger(sequence) || sequence < 0) {
    throw new RangeError(`Frame sequence ${sequence} must be a whole number >= 0`);
  }
  const view = new DataView(buf.buffer, buf.byteOffset + pos, linkFrameHeaderBytes);
  view.setUint32(0, linkFrameMagic, true);
  view.setUint8(4, linkFrameVersion);
  view.setUint8(5, type);
  view.setUint16(6, 0, true);
  view.setUint32(8, payloadBytes, true);
  view.setBigUint64(16, BigInt(sequence), true);
  view.setUint32(12, frameCrc(buf, pos, payloadBytes), true);
  return buf.subarray(pos, pos + linkFrameHeaderBytes + payloadBytes);
}

/** Encodes one frame into a new buffer. */
export function encodeFrame(
  type: FrameTypeCode,
  sequence: number,
  payload: Uint8Array = new Uint8Array(0),
): Uint8Array {
  const buf = new Uint8Array(linkFrameHeaderBytes + payload.length);
  buf.set(payload, linkFrameHeaderBytes);
  return sealFrame(buf, 0, type, sequence, payload.length);
}

/** Encodes a JSON frame (HELLO, WELCOME, ERROR). */
export function encodeJsonFrame(type: FrameTypeCode, value: unknown): Uint8Array {
  return encodeFrame(type, 0, encoder.encode(JSON.stringify(value)));
}

/** Encodes an ACK, RECEIVED or HARDENED frame: cumulative `sequence`, then the credit. */
export function encodeAckFrame(type: FrameTypeCode, sequence: number, credit: number): Uint8Array {
  const payload = new Uint8Array(8);
  new DataView(payload.buffer).setBigUint64(0, BigInt(credit), true);
  return encodeFrame(type, sequence, payload);
}

/** The credit an ACK, RECEIVED or HARDENED frame carries. */
export function ackCredit(frame: Frame): number {
  if (frame.payload.length !== 8) {
    throw new RangeError(`Ack frame payload of ${frame.payload.length} bytes must be 8`);
  }
  const view = new DataView(frame.payload.buffer, frame.payload.byteOffset, 8);
  return Number(view.getBigUint64(0, true));
}

/** Parses a JSON frame's payload. */
export function frameJson<T>(frame: Frame): T {
  return JSON.parse(decoder.decode(frame.payload)) as T;
}

/** Decodes the frame at `pos` of `buf`, verifying its checksum. */
export function decodeFrame(buf: Uint8Array, pos: number): FrameDecode {
  if (buf.length - pos < linkFrameHeaderBytes) return { ok: false, incomplete: true };
  const view = new DataView(buf.buffer, buf.byteOffset + pos, linkFrameHeaderBytes);
  const magic = view.getUint32(0, true);
  if (magic !== linkFrameMagic) {
    return { ok: false, incomplete: false, reason: `Bad frame magic 0x${magic.toString(16)}` };
  }
  const version = view.getUint8(4);
  if (version < linkFrameVersionMin || version > linkFrameVersion) {
    return { ok: false, incomplete: false, reason: `Unknown frame version ${version}` };
  }
  const type = view.getUint8(5);
  if (type < FrameType.hello || type > FrameType.error) {
    return { ok: false, incomplete: false, reason: `Unknown frame type ${type}` };
  }
  const payloadBytes = view.getUint32(8, true);
  if (payloadBytes > linkFrameBytesMax) {
    return {
      ok: false,
      incomplete: false,
      reason: `Frame payload ${payloadBytes} exceeds linkFrameBytesMax ${linkFrameBytesMax}`,
    };
  }
  const sequence = view.getBigUint64(16, true);
  if (sequence > BigInt(Number.MAX_SAFE_INTEGER)) {
    return { ok: false, incomplete: false, reason: `Frame sequence ${sequence} is too large` };
  }
  const end = pos + linkFrameHeaderBytes + payloadBytes;
  if (end > buf.length) return { ok: false, incomplete: true };
  if (frameCrc(buf, pos, payloadBytes) !== view.getUint32(12, true)) {
    return { ok: false, incomplete: false, reason: `Frame checksum mismatch` };
  }
  return {
    ok: true,
    frame: {
      type: type as FrameTypeCode,
      flags: view.getUint16(6, true),
      sequence: Number(sequence),
      payload: buf.subarray(pos + linkFrameHeaderBytes, end),
    },
    next: end,
  };
}

/**
 * Reads frames from a byte stream: `read` fills an internal buffer that grows to the largest
 * frame seen; decoded payloads are copies only when they must outlive the next read.
 */
export class FrameReader {
  #buf = new Uint8Array(256 * 1024);
  #start = 0;
  #end = 0;

  /**
   * `alloc` gives the buffer each payload is copied into (default: a new one); the backup passes
   * its payload pool's (backup/payload_pool.ts), so frames do not allocate.
   */
  constructor(
    private readonly conn: { read(p: Uint8Array): Promise<number | null> },
    private readonly alloc: (bytes: number) => Uint8Array = (bytes) => new Uint8Array(bytes),
  ) {}

  /**
   * The next frame, or null at a clean end of stream. Throws on a corrupt frame or a stream cut
   * inside one. The payload is a copy the caller owns (it may be kept, e.g. appended to the
   * journal).
   */
  async next(): Promise<Frame | null> {
    for (;;) {
      const decoded = decodeFrame(this.#buf.subarray(0, this.#end), this.#start);
      if (decoded.ok) {
        this.#start = decoded.next;
        const f = decoded.frame;
        const payload = this.alloc(f.payload.length);
        payload.set(f.payload);
        return { ...f, payload };
      }
      if (!decoded.incomplete) throw new Error(decoded.reason);
      this.#makeRoom();
      const n = await this.conn.read(this.#buf.subarray(this.#end));
      if (n === null) {
        if (this.#end === this.#start) return null;
        throw new Error(`Stream ended inside a frame (${this.#end - this.#start} bytes)`);
      }
      this.#end += n;
    }
  }

  /** Moves unread bytes to the front and grows the buffer to hold the pending frame whole. */
  #makeRoom(): void {
    let need = linkFrameHeaderBytes;
    if (this.#end - this.#start >= linkFrameHeaderBytes) {
      const view = new DataView(this.#buf.buffer, this.#start + 8, 4);
      need += view.getUint32(0, true);
    }
    if (this.#start > 0 && this.#buf.length - this.#start < Math.max(need, 64 * 1024)) {
      this.#buf.copyWithin(0, this.#start, this.#end);
      this.#end -= this.#start;
      this.#start = 0;
    }
    if (this.#buf.length - this.#start < need) {
      const grown = new Uint8Array(Math.max(need + this.#start, this.#buf.length * 2));
      grown.set(this.#buf.subarray(0, this.#end));
      this.#buf = grown;
    }
  }
}

/** Writes all of `bytes` to `conn`. */
export async function writeAll(
  conn: { write(p: Uint8Array): Promise<number> },
  bytes: Uint8Array,
): Promise<void> {
  let done = 0;
  while (done < bytes.length) done += await conn.write(bytes.subarray(done));
}
