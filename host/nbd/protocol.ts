/**
 * The NBD wire format (NetworkBlockDevice/nbd `doc/proto.md`): constants, encoders for what the
 * server sends and parsers for what the client sends. No I/O, and no state but the chunk simple
 * replies are cut from (byte_slab.ts). Every integer on the wire is big-endian. Parsers never
 * throw on bad input; they return a typed error instead.
 */
import { ByteSlab } from "./byte_slab.ts";

/** Magic numbers. The 64-bit ones are bigints; the 32-bit ones plain numbers. */
export const NbdMagic = {
  /** "NBDMAGIC", first 8 bytes the server sends. */
  INIT_PASSWD: 0x4e42444d41474943n,
  /** "IHAVEOPT", sent by the server after INIT_PASSWD and by the client before every option. */
  IHAVEOPT: 0x49484156454f5054n,
  /** Starts every option reply. */
  OPTION_REPLY: 0x3e889045565a9n,
  REQUEST: 0x25609513,
  SIMPLE_REPLY: 0x67446698,
  STRUCTURED_REPLY: 0x668e33ef,
} as const;

/** Handshake flags (16 bits, server → client). */
export const NbdHandshakeFlag = { FIXED_NEWSTYLE: 1 << 0, NO_ZEROES: 1 << 1 } as const;

/** Client flags (32 bits, client → server). */
export const NbdClientFlag = { FIXED_NEWSTYLE: 1 << 0, NO_ZEROES: 1 << 1 } as const;

/** Transmission flags (16 bits, sent with the export size). */
export const NbdFlag = {
  HAS_FLAGS: 1 << 0,
  READ_ONLY: 1 << 1,
  SEND_FLUSH: 1 << 2,
  SEND_FUA: 1 << 3,
  ROTATIONAL: 1 << 4,
  SEND_TRIM: 1 << 5,
  SEND_WRITE_ZEROES: 1 << 6,
  SEND_DF: 1 << 7,
  CAN_MULTI_CONN: 1 << 8,
  SEND_RESIZE: 1 << 9,
  SEND_CACHE: 1 << 10,
  SEND_FAST_ZERO: 1 << 11,
} as const;

/** Option codes of the fixed newstyle handshake. */
export const NbdOpt = {
  EXPORT_NAME: 1,
  ABORT: 2,
  LIST: 3,
  PEEK_EXPORT: 4,
  STARTTLS: 5,
  INFO: 6,
  GO: 7,
  STRUCTURED_REPLY: 8,
  LIST_META_CONTEXT: 9,
  SET_META_CONTEXT: 10,
} as const;

const errorBit = 0x80000000;
/** Option reply types; errors have bit 31 set. */
export const NbdRep = {
  ACK: 1,
  SERVER: 2,
  INFO: 3,
  META_CONTEXT: 4,
  ERR_UNSUP: errorBit + 1,
  ERR_POLICY: errorBit + 2,
  ERR_INVALID: errorBit + 3,
  ERR_PLATFORM: errorBit + 4,
  ERR_TLS_REQD: errorBit + 5,
  ERR_UNKNOWN: errorBit + 6,
  ERR_SHUTDOWN: errorBit + 7,
  ERR_BLOCK_SIZE_REQD: errorBit + 8,
  ERR_TOO_BIG: errorBit + 9,
} as const;

/** Information types in NBD_REP_INFO replies and NBD_OPT_INFO / NBD_OPT_GO requests. */
export const NbdInfo = { EXPORT: 0, NAME: 1, DESCRIPTION: 2, BLOCK_SIZE: 3 } as const;

/** Request types of the transmission phase. */
export const NbdCmd = {
  READ: 0,
  WRITE: 1,
  DISC: 2,
  FLUSH: 3,
  TRIM: 4,
  CACHE: 5,
  WRITE_ZEROES: 6,
  BLOCK_STATUS: 7,
  RESIZE: 8,
} as const;

/** Command flags (16 bits of every request). */
export const NbdCmdFlag = {
  FUA: 1 << 0,
  NO_HOLE: 1 << 1,
  DF: 1 << 2,
  REQ_ONE: 1 << 3,
  FAST_ZERO: 1 << 4,
} as const;

/** Structured reply chunk flags and types. */
export const NbdReplyFlag = { DONE: 1 << 0 } as const;
export const NbdReplyType = {
  NONE: 0,
  OFFSET_DATA: 1,
  OFFSET_HOLE: 2,
  BLOCK_STATUS: 5,
  ERROR: (1 << 15) + 1,
  ERROR_OFFSET: (1 << 15) + 2,
} as const;

/** Error values of simple replies and error chunks (not the host's errno). */
export const NbdError = {
  EPERM: 1,
  EIO: 5,
  ENOMEM: 12,
  EINVAL: 22,
  ENOSPC: 28,
  EOVERFLOW: 75,
  ENOTSUP: 95,
  ESHUTDOWN: 108,
} as const;

/** Size of the fixed parts of messages, in bytes. */
export const greetingBytes = 18;
export const clientFlagsBytes = 4;
export const optionHeaderBytes = 16;
export const optionReplyHeaderBytes = 20;
export const requestHeaderBytes = 28;
export const simpleReplyBytes = 16;
export const structuredHeaderBytes = 20;
/** Structured chunk header plus the 64-bit offset that starts an OFFSET_DATA payload. */
export const offsetDataHeaderBytes = structuredHeaderBytes + 8;
/** Zero padding after the NBD_OPT_EXPORT_NAME reply unless NO_ZEROES was agreed. */
export const exportNameZeroesBytes = 124;
/** Longest string (export name, error message) the protocol allows. */
export const stringBytesMax = 4096;

/** Why a parser rejected its input. */
export type NbdParseError =
  | { kind: "short"; needBytes: number; haveBytes: number }
  | { kind: "bad-magic"; magic: bigint }
  | { kind: "unknown-client-flags"; flags: number }
  | { kind: "invalid"; message: string };

/** A sentence naming the offending value, for logs and error replies. */
export function describeParseError(e: NbdParseError): string {
  switch (e.kind) {
    case "short":
      return `Message needs ${e.needBytes} bytes, only ${e.haveBytes} present`;
    case "bad-magic":
      return `Bad magic 0x${e.magic.toString(16)}`;
    case "unknown-client-flags":
      return `Unknown client flags 0x${e.flags.toString(16)}`;
    case "invalid":
      return e.message;
  }
}

/** Either a parsed value or the reason it could not be parsed. */
export type Parsed<T> = { ok: true; value: T } | { ok: false; error: NbdParseError };

const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
const fail = <T>(error: NbdParseError): Parsed<T> => ({ ok: false, error });
const short = <T>(needBytes: number, haveBytes: number): Parsed<T> =>
  fail({ kind: "short", needBytes, haveBytes });
const invalid = <T>(message: string): Parsed<T> => fail({ kind: "invalid", message });

const view = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);
const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder("utf-8", { fatal: true });

// ---------------------------------------------------------------------------------------------
// Handshake: server → client

/** NBDMAGIC, IHAVEOPT and the 16-bit handshake flags. */
export function encodeGreeting(handshakeFlags: number): Uint8Array {
  const out = new Uint8Array(greetingBytes);
  const v = view(out);
  v.setBigUint64(0, NbdMagic.INIT_PASSWD);
  v.setBigUint64(8, NbdMagic.IHAVEOPT);
  v.setUint16(16, handshakeFlags);
  return out;
}

/** One option reply: magic, the option it answers, the reply type, then `data`. */
export function encodeOptionReply(
  option: number,
  replyType: number,
  data: Uint8Array = new Uint8Array(0),
): Uint8Array {
  const out = new Uint8Array(optionReplyHeaderBytes + data.length);
  const v = view(out);
  v.setBigUint64(0, NbdMagic.OPTION_REPLY);
  v.setUint32(8, option);
  v.setUint32(12, replyType);
  v.setUint32(16, data.length);
  out.set(data, optionReplyHeaderBytes);
  return out;
}

/** An error option reply carrying a human-readable message. */
export function encodeOptionError(option: number, replyType: number, message: string): Uint8Array {
  return encodeOptionReply(option, replyType, truncateUtf8(message, stringBytesMax));
}

/** NBD_REP_SERVER data for NBD_OPT_LIST: the name's length, then the name. */
export function encodeServerEntry(name: string): Uint8Array {
  const bytes = utf8.encode(name);
  const out = new Uint8Array(4 + bytes.length);
  view(out).setUint32(0, bytes.length);
  out.set(bytes, 4);
  return out;
}

/** NBD_REP_INFO data of type NBD_INFO_EXPORT: size and transmission flags. */
export function encodeInfoExport(sizeBytes: number, transmissionFlags: number): Uint8Array {
  const out = new Uint8Array(12);
  const v = view(out);
  v.setUint16(0, NbdInfo.EXPORT);
  v.setBigUint64(2, BigInt(sizeBytes));
  v.setUint16(10, transmissionFlags);
  return out;
}

/** NBD_REP_INFO data of type NBD_INFO_BLOCK_SIZE: minimum, preferred, maximum. */
export function encodeInfoBlockSize(
  minimumBytes: number,
  preferredBytes: number,
  maximumBytes: number,
): Uint8Array {
  const out = new Uint8Array(14);
  const v = view(out);
  v.setUint16(0, NbdInfo.BLOCK_SIZE);
  v.setUint32(2, minimumBytes);
  v.setUint32(6, preferredBytes);
  v.setUint32(10, maximumBytes);
  return out;
}

/** The answer to NBD_OPT_EXPORT_NAME: size, transmission flags, and 124 zeroes unless NO_ZEROES. */
export function encodeExportNameReply(
  sizeBytes: number,
  transmissionFlags: number,
  noZeroes: boolean,
): Uint8Array {
  const out = new Uint8Array(10 + (noZeroes ? 0 : exportNameZeroesBytes));
  const v = view(out);
  v.setBigUint64(0, BigInt(sizeBytes));
  v.setUint16(8, transmissionFlags);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Handshake: client → server

/** The 32-bit client flags; any bit the server did not offer is an error (the server must hang up). */
export function parseClientFlags(bytes: Uint8Array): Parsed<number> {
  if (bytes.length < clientFlagsBytes) return short(clientFlagsBytes, bytes.length);
  const flags = view(bytes).getUint32(0);
  const known = NbdClientFlag.FIXED_NEWSTYLE | NbdClientFlag.NO_ZEROES;
  if ((flags & ~known) !== 0) return fail({ kind: "unknown-client-flags", flags });
  return ok(flags);
}

/** The fixed part of an option request; `length` bytes of option data follow it. */
export interface OptionHeader {
  option: number;
  length: number;
}

export function parseOptionHeader(bytes: Uint8Array): Parsed<OptionHeader> {
  if (bytes.length < optionHeaderBytes) return short(optionHeaderBytes, bytes.length);
  const v = view(bytes);
  const magic = v.getBigUint64(0);
  if (magic !== NbdMagic.IHAVEOPT) return fail({ kind: "bad-magic", magic });
  return ok({ option: v.getUint32(8), length: v.getUint32(12) });
}

/** The data of NBD_OPT_INFO and NBD_OPT_GO: an export name and the information types asked for. */
export interface InfoRequest {
  name: string;
  infoTypes: number[];
}

export function parseInfoRequest(data: Uint8Array): Parsed<InfoRequest> {
  if (data.length < 6) return invalid(`Option data of ${data.length} bytes is shorter than 6`);
  const v = view(data);
  const nameBytes = v.getUint32(0);
  if (nameBytes > data.length - 6) {
    return invalid(`Export name length ${nameBytes} exceeds option data length ${data.length} - 6`);
  }
  const name = parseString(data.subarray(4, 4 + nameBytes));
  if (!name.ok) return name;
  const count = v.getUint16(4 + nameBytes);
  const expected = 4 + nameBytes + 2 + 2 * count;
  if (expected !== data.length) {
    return invalid(
      `Option data is ${data.length} bytes but name and ${count} information requests need ${expected}`,
    );
  }
  const infoTypes: number[] = [];
  for (let i = 0; i < count; i++) infoTypes.push(v.getUint16(4 + nameBytes + 2 + 2 * i));
  return ok({ name: name.value, infoTypes });
}

/** NBD_REP_META_CONTEXT data: the context id, then its name. */
export function encodeMetaContext(contextId: number, name: string): Uint8Array {
  const bytes = utf8.encode(name);
  const out = new Uint8Array(4 + bytes.length);
  view(out).setUint32(0, contextId);
  out.set(bytes, 4);
  return out;
}

/** The data of NBD_OPT_LIST_META_CONTEXT and NBD_OPT_SET_META_CONTEXT: export and queries. */
export interface MetaContextRequest {
  name: string;
  queries: string[];
}

export function parseMetaContextRequest(data: Uint8Array): Parsed<MetaContextRequest> {
  if (data.length < 8) return invalid(`Option data of ${data.length} bytes is shorter than 8`);
  const v = view(data);
  const nameBytes = v.getUint32(0);
  if (nameBytes > data.length - 8) {
    return invalid(`Export name length ${nameBytes} exceeds option data length ${data.length} - 8`);
  }
  const name = parseString(data.subarray(4, 4 + nameBytes));
  if (!name.ok) return name;
  const count = v.getUint32(4 + nameBytes);
  let at = 8 + nameBytes;
  const queries: string[] = [];
  for (let i = 0; i < count; i++) {
    if (data.length - at < 4) {
      return invalid(`Option data of ${data.length} bytes ends before query ${i + 1} of ${count}`);
    }
    const queryBytes = v.getUint32(at);
    if (queryBytes > data.length - at - 4) {
      return invalid(
        `Query ${i + 1} length ${queryBytes} exceeds the ${data.length - at - 4} bytes left`,
      );
    }
    const query = parseString(data.subarray(at + 4, at + 4 + queryBytes));
    if (!query.ok) return query;
    queries.push(query.value);
    at += 4 + queryBytes;
  }
  if (at !== data.length) {
    return invalid(
      `Option data is ${data.length} bytes but the name and ${count} queries need ${at}`,
    );
  }
  return ok({ name: name.value, queries });
}

/** A protocol string: valid UTF-8, no NUL, at most 4096 bytes. */
export function parseString(bytes: Uint8Array): Parsed<string> {
  if (bytes.length > stringBytesMax) {
    return invalid(`String of ${bytes.length} bytes exceeds ${stringBytesMax}`);
  }
  if (bytes.includes(0)) return invalid("String contains a NUL byte");
  try {
    return ok(utf8Strict.decode(bytes));
  } catch {
    return invalid("String is not valid UTF-8");
  }
}

// ---------------------------------------------------------------------------------------------
// Transmission

/** The 28-byte request header; a WRITE is followed by `length` bytes of data. */
export interface RequestHeader {
  flags: number;
  type: number;
  /** Opaque to the server, echoed in the reply ("handle" in older texts). */
  cookie: bigint;
  /**
   * The 64-bit offset as a number. Offsets of 2^53 and above are not safe integers; callers must
   * treat them as out of range (no export is that large).
   */
  offset: number;
  length: number;
}

/** Parses the request header at `at` of `v` (the caller's buffer, so no copy per request). */
export function parseRequestHeader(v: DataView, at = 0): Parsed<RequestHeader> {
  const have = v.byteLength - at;
  if (have < requestHeaderBytes) return short(requestHeaderBytes, Math.max(0, have));
  const magic = v.getUint32(at);
  if (magic !== NbdMagic.REQUEST) return fail({ kind: "bad-magic", magic: BigInt(magic) });
  return ok({
    flags: v.getUint16(at + 4),
    type: v.getUint16(at + 6),
    cookie: v.getBigUint64(at + 8),
    offset: v.getUint32(at + 16) * 0x1_0000_0000 + v.getUint32(at + 20),
    length: v.getUint32(at + 24),
  });
}

/** Writes a 16-byte simple reply at `at` of `v`. */
export function writeSimpleReply(v: DataView, at: number, error: number, cookie: bigint): void {
  v.setUint32(at, NbdMagic.SIMPLE_REPLY);
  v.setUint32(at + 4, error);
  v.setBigUint64(at + 8, cookie);
}

/** Simple replies are cut from shared chunks: one per request otherwise (byte_slab.ts). */
const replySlab = new ByteSlab();

export function encodeSimpleReply(error: number, cookie: bigint): Uint8Array {
  const at = replySlab.reserve(simpleReplyBytes);
  writeSimpleReply(replySlab.view, at, error, cookie);
  return replySlab.chunk.subarray(at, at + simpleReplyBytes);
}

/** Writes a 20-byte structured reply chunk header at `at` of `v`. */
export function writeStructuredHeader(
  v: DataView,
  at: number,
  flags: number,
  type: number,
  cookie: bigint,
  payloadBytes: number,
): void {
  v.setUint32(at, NbdMagic.STRUCTURED_REPLY);
  v.setUint16(at + 4, flags);
  v.setUint16(at + 6, type);
  v.setBigUint64(at + 8, cookie);
  v.setUint32(at + 16, payloadBytes);
}

/**
 * The 28 bytes that precede `dataBytes` of read data in an NBD_REPLY_TYPE_OFFSET_DATA chunk:
 * chunk header (payload = 8 + dataBytes) and the offset. `done` marks the final chunk.
 */
export function encodeOffsetDataHeader(
  cookie: bigint,
  offset: number,
  dataBytes: number,
  done: boolean,
): Uint8Array {
  const out = new Uint8Array(offsetDataHeaderBytes);
  const v = view(out);
  const flags = done ? NbdReplyFlag.DONE : 0;
  writeStructuredHeader(v, 0, flags, NbdReplyType.OFFSET_DATA, cookie, 8 + dataBytes);
  v.setBigUint64(structuredHeaderBytes, BigInt(offset));
  return out;
}

/** The final NBD_REPLY_TYPE_NONE chunk. */
export function encodeStructuredNone(cookie: bigint): Uint8Array {
  const out = new Uint8Array(structuredHeaderBytes);
  writeStructuredHeader(view(out), 0, NbdReplyFlag.DONE, NbdReplyType.NONE, cookie, 0);
  return out;
}

/** A final NBD_REPLY_TYPE_ERROR chunk: error value, message length, message. */
export function encodeStructuredError(cookie: bigint, error: number, message: string): Uint8Array {
  const text = truncateUtf8(message, stringBytesMax);
  const out = new Uint8Array(structuredHeaderBytes + 6 + text.length);
  const v = view(out);
  writeStructuredHeader(v, 0, NbdReplyFlag.DONE, NbdReplyType.ERROR, cookie, 6 + text.length);
  v.setUint32(structuredHeaderBytes, error);
  v.setUint16(structuredHeaderBytes + 4, text.length);
  out.set(text, structuredHeaderBytes + 6);
  return out;
}

/**
 * One NBD_REPLY_TYPE_BLOCK_STATUS chunk (not final: the request's NONE chunk ends the reply):
 * the context id, then (length, status flags) per descriptor.
 */
export function encodeBlockStatusChunk(
  cookie: bigint,
  contextId: number,
  descriptors: readonly BlockStatusDescriptor[],
  done = false,
): Uint8Array {
  const payloadBytes = 4 + 8 * descriptors.length;
  const out = new Uint8Array(structuredHeaderBytes + payloadBytes);
  const v = view(out);
  const flags = done ? NbdReplyFlag.DONE : 0;
  writeStructuredHeader(v, 0, flags, NbdReplyType.BLOCK_STATUS, cookie, payloadBytes);
  v.setUint32(structuredHeaderBytes, contextId);
  descriptors.forEach((d, i) => {
    v.setUint32(structuredHeaderBytes + 4 + 8 * i, d.length);
    v.setUint32(structuredHeaderBytes + 8 + 8 * i, d.flags);
  });
  return out;
}

/** One block status descriptor: `length` bytes (nonzero, under 2^32) sharing status `flags`. */
export interface BlockStatusDescriptor {
  length: number;
  flags: number;
}

/** UTF-8 of `s`, cut to at most `maxBytes` on a character boundary. */
export function truncateUtf8(s: string, maxBytes: number): Uint8Array {
  const bytes = utf8.encode(s);
  if (bytes.length <= maxBytes) return bytes;
  let end = maxBytes;
  while (end > 0 && (bytes[end] & 0xc0) === 0x80) end--; // back off a continuation byte
  return bytes.subarray(0, end);
}

const names = (table: Record<string, number>, prefix: string) =>
  new Map(Object.entries(table).map(([k, v]) => [v, `${prefix}${k}`]));
const optNames = names(NbdOpt, "NBD_OPT_");
const cmdNames = names(NbdCmd, "NBD_CMD_");

/** "NBD_OPT_GO", or "option 4711" for a code the spec does not name. */
export const optionName = (option: number): string => optNames.get(option) ?? `option ${option}`;
/** "NBD_CMD_READ", or "command 99". */
export const commandName = (type: number): string => cmdNames.get(type) ?? `command ${type}`;
