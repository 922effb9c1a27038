/**
 * What the server does with one transmission request, decided before any device is called: the
 * boundary where NBD ranges, lengths and flags are checked. Pure: no I/O, no state.
 */
import { commandName, NbdCmd, NbdCmdFlag, NbdError, type RequestHeader } from "./protocol.ts";

/**
 * A refused WRITE's payload is read and discarded, whatever its length (at most 2^32 - 1 bytes, the
 * largest a header can carry), so the client gets an error reply and the stream stays in step. The
 * payload passes through the connection's fixed read buffer, so draining costs the server no memory
 * and the client as much sending as a valid write would. proto.md lets a server hang up on a
 * payload it deems a denial of service, but a hang-up answers nothing: a client that sent one
 * oversized WRITE would see a dropped connection instead of NBD_EINVAL.
 */
export const drainBytesMax = 0xffff_ffff;

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
  /** Metadata contexts were selected for this export (NBD_CMD_BLOCK_STATUS may be served). */
  blockStatus?: boolean;
}

export type RequestVerdict =
  /** Valid: call the device. */
  | { kind: "execute" }
  /** Refused with `error`; a WRITE's payload must still be read and discarded. */
  | { kind: "refuse"; error: number; message: string }
  /** NBD_CMD_DISC: finish the requests in flight, then close. */
  | { kind: "disconnect" };

/** Command flags each command accepts; FUA is valid on every command once SEND_FUA is advertised. */
const flagsAllowed: ReadonlyMap<number, number> = new Map([
  [NbdCmd.READ, NbdCmdFlag.FUA], // DF is added when structured replies were negotiated
  [NbdCmd.WRITE, NbdCmdFlag.FUA],
  [NbdCmd.DISC, NbdCmdFlag.FUA],
  [NbdCmd.FLUSH, NbdCmdFlag.FUA],
  [NbdCmd.TRIM, NbdCmdFlag.FUA],
  [NbdCmd.WRITE_ZEROES, NbdCmdFlag.FUA | NbdCmdFlag.NO_HOLE],
  [NbdCmd.BLOCK_STATUS, NbdCmdFlag.FUA | NbdCmdFlag.REQ_ONE],
]);

/** Bytes of data that follow the header on the wire. */
export const payloadBytes = (h: RequestHeader): number => h.type === NbdCmd.WRITE ? h.length : 0;

export function checkRequest(h: RequestHeader, limits: RequestLimits): RequestVerdict {
  const name = commandName(h.type);
  const where = `${name} at ${h.offset}+${h.length} on export "${limits.exportName}"`;
  const allowed = flagsAllowed.get(h.type);
  if (allowed === undefined) return refuse(NbdError.EINVAL, `Unknown command ${h.type}`);
  if (h.type === NbdCmd.DISC) return { kind: "disconnect" };
  if (limits.shuttingDown) {
    return refuse(NbdError.ESHUTDOWN, `${where}: server is shutting down`);
  }
  if (h.type === NbdCmd.BLOCK_STATUS && !limits.blockStatus) {
    return refuse(
      NbdError.EINVAL,
      `${where}: no metadata context was selected (NBD_OPT_SET_META_CONTEXT)`,
    );
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
  // most requestBytesMax, and BLOCK_STATUS answers a prefix of a long range (block_status.ts),
  // so only READ and WRITE are bounded here.
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
