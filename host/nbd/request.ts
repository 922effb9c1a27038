/**
 * What the server does with one transmission request, decided before any device is called: the
 * boundary where NBD ranges, lengths and flags are checked. Pure: no I/O, no state.
 */
import { commandName, NbdCmd, NbdCmdFlag, NbdError, type RequestHeader } from "./protocol.ts";

/**
 * Write payloads up to this many bytes are read and discarded when the request is refused, so the
 * stream stays in step. The spec says a length below 2^25 should not be deemed a denial of service;
 * a longer payload that the server will not accept ends the connection instead.
 */
export const drainBytesMin = 32 * 1024 * 1024;

/** Everything the decision depends on besides the header. */
export interface RequestLimits {
  exportName: string;
  sizeBytes: number;
  /** Largest READ or WRITE accepted (the advertised maximum block size). */
  requestBytesMax: number;
  /** Structured replies were negotiated (and so NBD_FLAG_SEND_DF was advertised). */
  structured: boolean;
  /** The server is shutting down: refuse new work with ESHUTDOWN. */
  shuttingDown: boolean;
}

export type RequestVerdict =
  /** Valid: call the device. */
  | { kind: "execute" }
  /** Refused with `error`; a WRITE's payload must still be read and discarded. */
  | { kind: "refuse"; error: number; message: string }
  /** NBD_CMD_DISC: finish the requests in flight, then close. */
  | { kind: "disconnect" }
  /** The stream cannot be kept in step (payload too large to drain): close at once. */
  | { kind: "hang-up"; message: string };

/** Command flags each command accepts; FUA is valid on every command once SEND_FUA is advertised. */
const flagsAllowed: ReadonlyMap<number, number> = new Map([
  [NbdCmd.READ, NbdCmdFlag.FUA], // DF is added when structured replies were negotiated
  [NbdCmd.WRITE, NbdCmdFlag.FUA],
  [NbdCmd.DISC, NbdCmdFlag.FUA],
  [NbdCmd.FLUSH, NbdCmdFlag.FUA],
  [NbdCmd.TRIM, NbdCmdFlag.FUA],
  [NbdCmd.WRITE_ZEROES, NbdCmdFlag.FUA | NbdCmdFlag.NO_HOLE],
]);

/** Bytes of data that follow the header on the wire. */
export const payloadBytes = (h: RequestHeader): number => h.type === NbdCmd.WRITE ? h.length : 0;

/** Largest refused WRITE payload that is drained rather than answered by hanging up. */
export const drainBytesMax = (limits: RequestLimits): number =>
  Math.max(limits.requestBytesMax, drainBytesMin);

export function checkRequest(h: RequestHeader, limits: RequestLimits): RequestVerdict {
  const name = commandName(h.type);
  const where = `${name} at ${h.offset}+${h.length} on export "${limits.exportName}"`;
  if (payloadBytes(h) > drainBytesMax(limits)) {
    return {
      kind: "hang-up",
      message: `${where}: payload of ${h.length} bytes exceeds ${drainBytesMax(limits)}`,
    };
  }
  const allowed = flagsAllowed.get(h.type);
  if (allowed === undefined) return refuse(NbdError.EINVAL, `Unknown command ${h.type}`);
  if (h.type === NbdCmd.DISC) return { kind: "disconnect" };
  if (limits.shuttingDown) {
    return refuse(NbdError.ESHUTDOWN, `${where}: server is shutting down`);
  }
  const flagsOk = allowed | (h.type === NbdCmd.READ && limits.structured ? NbdCmdFlag.DF : 0);
  if ((h.flags & ~flagsOk) !== 0) {
    return refuse(NbdError.EINVAL, `${where}: flags 0x${h.flags.toString(16)} not valid here`);
  }
  if (h.type === NbdCmd.FLUSH) {
    if (h.offset !== 0 || h.length !== 0) {
      return refuse(NbdError.EINVAL, `${where}: offset and length must be 0`);
    }
    return { kind: "execute" };
  }
  if (h.length === 0) return refuse(NbdError.EINVAL, `${where}: length must be > 0`);
  // TRIM and WRITE_ZEROES carry no payload; the server splits them into device calls of at
  // most requestBytesMax, so only READ and WRITE are bounded here.
  if ((h.type === NbdCmd.READ || h.type === NbdCmd.WRITE) && h.length > limits.requestBytesMax) {
    return refuse(
      NbdError.EINVAL,
      `${where}: length exceeds the maximum block size ${limits.requestBytesMax}`,
    );
  }
  const end = h.offset + h.length;
  if (!Number.isSafeInteger(end) || end > limits.sizeBytes) {
    const writes = h.type === NbdCmd.WRITE || h.type === NbdCmd.WRITE_ZEROES;
    return refuse(
      writes ? NbdError.ENOSPC : NbdError.EINVAL,
      `${where}: range exceeds export size ${limits.sizeBytes}`,
    );
  }
  return { kind: "execute" };
}

const refuse = (error: number, message: string): RequestVerdict => ({
  kind: "refuse",
  error,
  message,
});
