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
  const frame = buf.subarray(pos, pos + linkFrameHeaderBytes + payloadBytes);
  sealFramePieces([frame], type, sequence);
  return frame;
}

/**
 * Writes the header of a frame sent as `pieces` back to back (one socket write each), then its
 * checksum: the first piece begins with the header's 24 bytes, the rest of the bytes are the
 * payload. A sender so sends a large record's data from the buffer it arrived in, uncopied.
 */
export function sealFramePieces(
  pieces: readonly Uint8Array[],
  type: FrameTypeCode,
  sequence: number,
): void {
  const head = pieces[0];
  if (head.length < linkFrameHeaderBytes) {
    throw new RangeError(`First frame piece of ${head.length} bytes holds no header`);
  }
  const payloadBytes = pieces.reduce((n, p) => n + p.length, 0) - linkFrameHeaderBytes;
  if (payloadBytes > linkFrameBytesMax) {
    throw new RangeError(`Frame payload ${payloadBytes} exceeds linkFrameBytesMax`);
  }
  if (!Number.isSafeInteger(sequence) || sequence < 0) {
    throw new RangeError(`Frame sequence ${sequence} must be a whole number >= 0`);
  }
  const view = new DataView(head.buffer, head.byteOffset, linkFrameHeaderBytes);
  view.setUint32(0, linkFrameMagic, true);
  view.setUint8(4, linkFrameVersion);
  view.setUint8(5, type);
  view.setUint16(6, 0, true);
  view.setUint32(8, payloadBytes, true);
  view.setBigUint64(16, BigInt(sequence), true);
  let crc = frameCrc(head, 0, head.length - linkFrameHeaderBytes);
  for (let i = 1; i < pieces.length; i++) crc = crc32(pieces[i], crc);
  view.setUint32(12, crc, true);
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

/** A frame header decoded and checked; the payload follows it. */
export interface FrameHeader {
  type: FrameTypeCode;
  flags: number;
  sequence: number;
  payloadBytes: number;
  /** The checksum the header carries (bytes 12..16). */
  crc: number;
}

/** What decoding a header at a position found. */
export type FrameHeaderDecode =
  | { ok: true; header: FrameHeader }
  | { ok: false; incomplete: true }
  | { ok: false; incomplete: false; reason: string };

/** Decodes and checks the frame header at `pos` of `buf` (the payload may not be there yet). */
export function decodeFrameHeader(buf: Uint8Array, pos: number): FrameHeaderDecode {
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
  return {
    ok: true,
    header: {
      type: type as FrameTypeCode,
      flags: view.getUint16(6, true),
      sequence: Number(sequence),
      payloadBytes,
      crc: view.getUint32(12, true),
    },
  };
}

function headerFrame(h: FrameHeader, payload: Uint8Array): Frame {
  return { type: h.type, flags: h.flags, sequence: h.sequence, payload };
}

/** Decodes the frame at `pos` of `buf`, verifying its checksum. */
export function decodeFrame(buf: Uint8Array, pos: number): FrameDecode {
  const decoded = decodeFrameHeader(buf, pos);
  return decoded.ok ? frameAt(buf, pos, decoded.header) : decoded;
}

/** The frame whose header `h` is at `pos` of `buf`, once all of it is there: checksum verified. */
function frameAt(buf: Uint8Array, pos: number, h: FrameHeader): FrameDecode {
  const end = pos + linkFrameHeaderBytes + h.payloadBytes;
  if (end > buf.length) return { ok: false, incomplete: true };
  if (frameCrc(buf, pos, h.payloadBytes) !== h.crc) {
    return { ok: false, incomplete: false, reason: `Frame checksum mismatch` };
  }
  const payload = buf.subarray(pos + linkFrameHeaderBytes, end);
  return { ok: true, frame: headerFrame(h, payload), next: end };
}

/**
 * A pending frame whose payload is at least this large is read straight into its payload buffer
 * (only the bytes already read with its header are copied), and the read after it takes just the
 * next header, so a run of large frames reaches its buffers uncopied. Smaller frames are decoded
 * from the shared read buffer, many per read, and each payload copied out: below 256 KiB the copy
 * (1.3–6 µs for 64 KiB, measured) costs no more than the extra read a frame read apart can take
 * (~2.6 µs a socket call), and frames of 4 KiB writes at depth 32 (at most ~132 KiB) keep their
 * one read for many frames.
 */
export const frameReadDirectBytesMin = 256 * 1024;

/**
 * Reads frames from a byte stream: `read` fills an internal buffer that grows to the largest
 * frame read through it; decoded payloads are buffers the caller owns.
 */
export class FrameReader {
  #buf = new Uint8Array(256 * 1024);
  #start = 0;
  #end = 0;
  /** The last frame was read directly: the next read into the buffer takes a header only. */
  #headerNext = false;
  /** Frames read straight into their payload buffer (for tests). */
  directFrames = 0;

  /**
   * `alloc` gives the buffer each payload is copied or read into (default: a new one); the
   * backup passes its payload pool's (backup/payload_pool.ts), so frames do not allocate.
   */
  constructor(
    private readonly conn: { read(p: Uint8Array): Promise<number | null> },
    private readonly alloc: (bytes: number) => Uint8Array = (bytes) => new Uint8Array(bytes),
  ) {}

  /**
   * The next frame, or null at a clean end of stream. Throws on a corrupt frame or a stream cut
   * inside one. The payload is a buffer of its own the caller owns (it may be kept, e.g.
   * appended to the journal).
   */
  async next(): Promise<Frame | null> {
    for (;;) {
      const buffered = this.#buf.subarray(0, this.#end);
      const head = decodeFrameHeader(buffered, this.#start);
      if (!head.ok && !head.incomplete) throw new Error(head.reason);
      if (head.ok) {
        const h = head.header;
        const have = this.#end - this.#start - linkFrameHeaderBytes;
        if (have < h.payloadBytes && h.payloadBytes >= frameReadDirectBytesMin) {
          return await this.#readDirect(h);
        }
        const decoded = frameAt(buffered, this.#start, h);
        if (decoded.ok) {
          this.#start = decoded.next;
          if (this.#start === this.#end) this.#start = this.#end = 0;
          const payload = this.alloc(decoded.frame.payload.length);
          payload.set(decoded.frame.payload);
          return { ...decoded.frame, payload };
        }
        if (!decoded.incomplete) throw new Error(decoded.reason);
      }
      this.#makeRoom();
      const room = this.#headerNext && this.#end === this.#start
        ? linkFrameHeaderBytes
        : this.#buf.length - this.#end;
      this.#headerNext = false;
      const n = await this.conn.read(this.#buf.subarray(this.#end, this.#end + room));
      if (n === null) {
        if (this.#end === this.#start) return null;
        throw new Error(`Stream ended inside a frame (${this.#end - this.#start} bytes)`);
      }
      this.#end += n;
    }
  }

  /**
   * Reads the pending frame's payload into its own buffer: the bytes buffered with the header
   * are copied, the rest is read straight into it; then the checksum is verified.
   */
  async #readDirect(h: FrameHeader): Promise<Frame> {
    // Nothing is read into the shared buffer meanwhile: the header stays where it is.
    const headAt = this.#start;
    const payload = this.alloc(h.payloadBytes);
    const early = this.#buf.subarray(headAt + linkFrameHeaderBytes, this.#end);
    payload.set(early);
    let got = early.length;
    while (got < payload.length) {
      const n = await this.conn.read(payload.subarray(got));
      if (n === null) {
        throw new Error(
          `Stream ended inside a frame (${linkFrameHeaderBytes + got} of ${
            linkFrameHeaderBytes + payload.length
          } bytes)`,
        );
      }
      got += n;
    }
    let crc = crc32(this.#buf.subarray(headAt, headAt + 12));
    crc = crc32(this.#buf.subarray(headAt + 16, headAt + linkFrameHeaderBytes), crc);
    crc = crc32(payload, crc);
    this.#start = this.#end = 0;
    if (crc !== h.crc) throw new Error(`Frame checksum mismatch`);
    this.#headerNext = true;
    this.directFrames++;
    return headerFrame(h, payload);
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
