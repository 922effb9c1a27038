/**
 * A reference model of the NBD server for the fuzzer, written from proto.md and the documented
 * refusals of host/nbd/request.ts, independently of the server's parsers: given every byte a client
 * sent, it says which option replies, which transmission replies (cookie, error, read data) and
 * which device changes the server must produce. It works on the whole input at once, so it knows
 * nothing of how the bytes were split into reads.
 */

/** What the model expects of one connection. */
export interface ModelOutcome {
  /** False when the client flags were refused (only the greeting is sent). */
  flagsAccepted: boolean;
  /** Option replies in order: the option answered and the reply type. */
  optionReplies: { option: number; type: number }[];
  /** How option haggling ended. */
  entered?: { via: "go" | "export-name"; structured: boolean; noZeroes: boolean };
  /** Transmission replies in request order. */
  replies: { cookie: bigint; error: number; data?: Uint8Array }[];
  /** Device calls that change data (write, trim, write zeroes). */
  changes: number;
  /** The export's bytes after the connection. */
  image: Uint8Array;
}

export interface ModelExport {
  name: string;
  sizeBytes: number;
}

export const REP = {
  ACK: 1,
  SERVER: 2,
  INFO: 3,
  ERR_UNSUP: 0x80000001,
  ERR_INVALID: 0x80000003,
  ERR_UNKNOWN: 0x80000006,
  ERR_TOO_BIG: 0x80000009,
} as const;

export const EINVAL = 22;
export const ENOSPC = 28;
const IHAVEOPT = 0x49484156454f5054n;
const REQUEST_MAGIC = 0x25609513;
const optionDataBytesMax = 16 * 1024;
const FUA = 1, NO_HOLE = 2, DF = 4;

const strict = new TextDecoder("utf-8", { fatal: true });

/** A valid protocol string: UTF-8, no NUL, at most 4096 bytes; else undefined. */
function protocolString(b: Uint8Array): string | undefined {
  if (b.length > 4096 || b.includes(0)) return undefined;
  try {
    return strict.decode(b);
  } catch {
    return undefined;
  }
}

/** Runs the model over `input` against one export served with `requestBytesMax`. */
export function modelServe(
  input: Uint8Array,
  exp: ModelExport,
  requestBytesMax: number,
  initial: Uint8Array,
): ModelOutcome {
  const v = new DataView(input.buffer, input.byteOffset, input.byteLength);
  const out: ModelOutcome = {
    flagsAccepted: false,
    optionReplies: [],
    replies: [],
    changes: 0,
    image: initial.slice(),
  };
  let pos = 0;
  const has = (n: number) => pos + n <= input.length;
  if (!has(4)) return out;
  const clientFlags = v.getUint32(pos);
  pos += 4;
  if ((clientFlags & ~3) !== 0) return out;
  out.flagsAccepted = true;
  const noZeroes = (clientFlags & 2) !== 0;
  let structured = false;
  const reply = (option: number, ...types: number[]) =>
    types.forEach((type) => out.optionReplies.push({ option, type }));

  for (;;) {
    if (!has(16) || v.getBigUint64(pos) !== IHAVEOPT) return out;
    const option = v.getUint32(pos + 8);
    const length = v.getUint32(pos + 12);
    pos += 16;
    if (!has(length)) return out;
    const data = input.subarray(pos, pos + length);
    pos += length;
    if (length > optionDataBytesMax) {
      reply(option, REP.ERR_TOO_BIG);
      continue;
    }
    if (option === 1) { // EXPORT_NAME: no error reply exists, an unknown name ends the session
      if (protocolString(data) !== exp.name) return out;
      out.entered = { via: "export-name", structured, noZeroes };
      break;
    } else if (option === 2) { // ABORT
      reply(option, REP.ACK);
      return out;
    } else if (option === 3) { // LIST
      if (length !== 0) reply(option, REP.ERR_INVALID);
      else reply(option, REP.SERVER, REP.ACK);
    } else if (option === 6 || option === 7) { // INFO, GO
      const name = infoName(data);
      if (name === undefined) reply(option, REP.ERR_INVALID);
      else if (name !== exp.name) reply(option, REP.ERR_UNKNOWN);
      else {
        reply(option, REP.INFO, REP.INFO, REP.ACK);
        if (option === 7) {
          out.entered = { via: "go", structured, noZeroes };
          break;
        }
      }
    } else if (option === 9 || option === 10) { // LIST_META_CONTEXT, SET_META_CONTEXT
      // SET needs structured replies first; the model's export offers no context, so a valid
      // request for it is answered by ACK alone.
      const name = metaContextName(data);
      if (option === 10 && !structured) reply(option, REP.ERR_INVALID);
      else if (name === undefined) reply(option, REP.ERR_INVALID);
      else if (name !== exp.name) reply(option, REP.ERR_UNKNOWN);
      else reply(option, REP.ACK);
    } else if (option === 8) { // STRUCTURED_REPLY
      if (length !== 0) reply(option, REP.ERR_INVALID);
      else {
        structured = true;
        reply(option, REP.ACK);
      }
    } else reply(option, REP.ERR_UNSUP);
  }

  // Transmission. Flags each command accepts (DF on READ once structured replies are on).
  const allowed = new Map<number, number>([
    [0, FUA | (structured ? DF : 0)],
    [1, FUA],
    [2, FUA],
    [3, FUA],
    [4, FUA],
    [6, FUA | NO_HOLE],
  ]);
  const size = BigInt(exp.sizeBytes);
  while (has(28) && v.getUint32(pos) === REQUEST_MAGIC) {
    const flags = v.getUint16(pos + 4);
    const type = v.getUint16(pos + 6);
    const cookie = v.getBigUint64(pos + 8);
    const offset = v.getBigUint64(pos + 16);
    const length = v.getUint32(pos + 24);
    pos += 28;
    const payload = type === 1 ? length : 0;
    if (!has(payload)) return out; // hung up inside the payload: no reply, nothing written
    const data = input.subarray(pos, pos + payload);
    pos += payload;
    const ok = allowed.get(type);
    let error = 0;
    if (ok === undefined) error = EINVAL;
    else if (type === 2) return out; // DISC
    else if ((flags & ~ok) !== 0) error = EINVAL;
    else if (type === 3) error = offset !== 0n || length !== 0 ? EINVAL : 0;
    else if (length === 0) error = EINVAL;
    else if ((type === 0 || type === 1) && length > requestBytesMax) error = EINVAL;
    else if (offset + BigInt(length) > size) error = type === 1 || type === 6 ? ENOSPC : EINVAL;
    if (error !== 0) {
      out.replies.push({ cookie, error });
      continue;
    }
    const at = Number(offset);
    if (type === 0) {
      out.replies.push({ cookie, error, data: out.image.slice(at, at + length) });
      continue;
    }
    if (type === 1) out.image.set(data, at);
    if (type === 4 || type === 6) out.image.fill(0, at, at + length);
    if (type !== 3) out.changes++;
    out.replies.push({ cookie, error });
  }
  return out;
}

/**
 * The export name of NBD_OPT_LIST_META_CONTEXT / NBD_OPT_SET_META_CONTEXT data (name, query count,
 * queries, nothing left over), or undefined when the data is malformed.
 */
function metaContextName(data: Uint8Array): string | undefined {
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  if (data.length < 8) return undefined;
  const nameBytes = v.getUint32(0);
  if (nameBytes > data.length - 8) return undefined;
  const name = protocolString(data.subarray(4, 4 + nameBytes));
  let at = 8 + nameBytes;
  for (let i = v.getUint32(4 + nameBytes); i > 0; i--) {
    if (data.length - at < 4) return undefined;
    const queryBytes = v.getUint32(at);
    if (queryBytes > data.length - at - 4) return undefined;
    if (protocolString(data.subarray(at + 4, at + 4 + queryBytes)) === undefined) return undefined;
    at += 4 + queryBytes;
  }
  return at === data.length ? name : undefined;
}

/** The export name of NBD_OPT_INFO / NBD_OPT_GO data, or undefined when the data is malformed. */
function infoName(data: Uint8Array): string | undefined {
  if (data.length < 6) return undefined;
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const nameBytes = v.getUint32(0);
  if (nameBytes > data.length - 6) return undefined;
  const name = protocolString(data.subarray(4, 4 + nameBytes));
  if (name === undefined) return undefined;
  const count = v.getUint16(4 + nameBytes);
  return 4 + nameBytes + 2 + 2 * count === data.length ? name : undefined;
}
