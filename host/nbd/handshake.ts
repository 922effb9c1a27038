/**
 * The fixed newstyle handshake (option haggling) of one NBD connection: greet, read the client
 * flags, answer options until the client picks an export (NBD_OPT_GO or NBD_OPT_EXPORT_NAME),
 * aborts, or breaks the protocol. No TLS: NBD_OPT_STARTTLS is answered NBD_REP_ERR_UNSUP.
 *
 * With a token (export_auth.ts) an export is named VOLUME/TOKEN; a name without the right token
 * gets NBD_REP_ERR_POLICY whether or not the volume exists, NBD_OPT_LIST gets NBD_REP_ERR_POLICY
 * (it would name the volumes to anyone), and after `authFailuresMax` refusals the connection is
 * closed, so one connection cannot try tokens until the handshake timeout. The export name of
 * NBD_OPT_LIST_META_CONTEXT and NBD_OPT_SET_META_CONTEXT is checked the same way, and counts
 * toward the same bound.
 *
 * Metadata contexts (meta_context.ts) are selected by NBD_OPT_SET_META_CONTEXT, which needs
 * structured replies first; a selection holds only for the export it named, so one made for
 * another export than NBD_OPT_GO's is dropped (NBD_CMD_BLOCK_STATUS then answers EINVAL).
 */
import type { BlockDevice } from "../../src/block_device.ts";
import { authorizeExport, type ExportAccess } from "./export_auth.ts";
import { listContexts, type MetaContext, selectContexts } from "./meta_context.ts";
import {
  clientFlagsBytes,
  describeParseError,
  encodeExportNameReply,
  encodeGreeting,
  encodeInfoBlockSize,
  encodeInfoExport,
  encodeMetaContext,
  encodeOptionError,
  encodeOptionReply,
  encodeServerEntry,
  NbdClientFlag,
  NbdFlag,
  NbdHandshakeFlag,
  NbdOpt,
  NbdRep,
  optionHeaderBytes,
  optionName,
  parseClientFlags,
  parseInfoRequest,
  parseMetaContextRequest,
  parseOptionHeader,
  parseString,
} from "./protocol.ts";
import type { SocketReader } from "./reader.ts";
import { concatBytes } from "../../src/bytes.ts";

/**
 * Option data up to this size is read and handled; longer data is discarded unread and answered
 * NBD_REP_ERR_TOO_BIG. The longest legitimate option is a 4 KiB name plus a few fields.
 */
export const optionBytesMax = 16 * 1024;

/** Block size constraints advertised in NBD_INFO_BLOCK_SIZE (maximum is requestBytesMax). */
export const blockBytesMin = 1;
export const blockBytesPreferred = 4096;

/** Export names refused for a missing or wrong token before the connection is closed. */
export const authFailuresMax = 3;

/** Flags every export is served with; SEND_DF is added once structured replies were negotiated. */
export const transmissionFlagsBase = NbdFlag.HAS_FLAGS | NbdFlag.SEND_FLUSH | NbdFlag.SEND_FUA |
  NbdFlag.SEND_TRIM | NbdFlag.SEND_WRITE_ZEROES | NbdFlag.CAN_MULTI_CONN;

export interface HandshakeContext {
  /** The device of a volume name (the token, when there is one, is already checked and cut off). */
  lookup(exportName: string): BlockDevice | undefined;
  listExports(): string[];
  /** The metadata contexts a volume offers (meta_context.ts); default: none. */
  offeredContexts?(volume: string): MetaContext[];
  /** When set, export names must carry it (export_auth.ts). */
  token?: string;
  requestBytesMax: number;
  log(message: string): void;
}

export type HandshakeResult =
  /** `exportName` is the volume: the token part of an authenticated name is never kept. */
  | {
    kind: "transmission";
    exportName: string;
    device: BlockDevice;
    structured: boolean;
    /** The metadata contexts selected for this export (empty: NBD_CMD_BLOCK_STATUS is refused). */
    contexts: MetaContext[];
  }
  /** The client aborted, hung up, or broke the protocol; the connection is to be closed. */
  | { kind: "closed" };

/** Runs the handshake on `reader` (and `write` for replies) up to the transmission phase. */
export async function negotiate(
  reader: SocketReader,
  write: (bytes: Uint8Array) => Promise<void>,
  ctx: HandshakeContext,
): Promise<HandshakeResult> {
  const closed: HandshakeResult = { kind: "closed" };
  await write(encodeGreeting(NbdHandshakeFlag.FIXED_NEWSTYLE | NbdHandshakeFlag.NO_ZEROES));
  if (!(await reader.fill(clientFlagsBytes))) return closed;
  const clientFlags = parseClientFlags(reader.take(clientFlagsBytes));
  if (!clientFlags.ok) {
    ctx.log(`Closing connection: ${describeParseError(clientFlags.error)}`);
    return closed;
  }
  const noZeroes = (clientFlags.value & NbdClientFlag.NO_ZEROES) !== 0;
  let structured = false;
  let authFailures = 0;
  /** The last NBD_OPT_SET_META_CONTEXT's export and selection. */
  let selected: { volume: string; contexts: MetaContext[] } | undefined;
  const contextsFor = (volume: string) => selected?.volume === volume ? selected.contexts : [];
  /** Counts a refused export name; true once the bound is reached (close the connection). */
  const refused = async (option: number, access: Extract<ExportAccess, { ok: false }>) => {
    authFailures++;
    const opt = optionName(option);
    ctx.log(`Refused ${opt} (${authFailures} of ${authFailuresMax}): ${access.reason}`);
    await write(encodeOptionError(option, NbdRep.ERR_POLICY, access.reason));
    return authFailures >= authFailuresMax;
  };

  for (;;) {
    if (!(await reader.fill(optionHeaderBytes))) return closed;
    const header = parseOptionHeader(reader.take(optionHeaderBytes));
    if (!header.ok) {
      ctx.log(`Closing connection: option header: ${describeParseError(header.error)}`);
      return closed;
    }
    const { option, length } = header.value;
    const opt = optionName(option);
    if (length > optionBytesMax) {
      if (!(await reader.skip(length))) return closed;
      await write(encodeOptionError(
        option,
        NbdRep.ERR_TOO_BIG,
        `${opt} data of ${length} bytes exceeds ${optionBytesMax}`,
      ));
      continue;
    }
    if (!(await reader.fill(length))) return closed;
    const data = reader.take(length);

    switch (option) {
      case NbdOpt.EXPORT_NAME: {
        // This option cannot answer an error: an unknown export ends the session.
        const name = parseString(data);
        if (!name.ok) {
          ctx.log(`Closing connection: ${opt} names no export (${describeParseError(name.error)})`);
          return closed;
        }
        const access = authorizeExport(name.value, ctx.token);
        if (!access.ok) {
          ctx.log(`Closing connection: ${opt} refused: ${access.reason}`);
          return closed;
        }
        const device = ctx.lookup(access.volume);
        if (!device) {
          // The volume part only: the rest of the name may be the token.
          ctx.log(`Closing connection: ${opt} names no export ("${access.volume}")`);
          return closed;
        }
        await write(encodeExportNameReply(device.sizeBytes, flagsFor(structured), noZeroes));
        return {
          kind: "transmission",
          exportName: access.volume,
          device,
          structured,
          contexts: contextsFor(access.volume),
        };
      }
      case NbdOpt.ABORT:
        await write(encodeOptionReply(option, NbdRep.ACK)).catch(() => {});
        return closed;
      case NbdOpt.LIST: {
        if (length !== 0) {
          await write(encodeOptionError(option, NbdRep.ERR_INVALID, `${opt} takes no data`));
          break;
        }
        if (ctx.token !== undefined) {
          await write(encodeOptionError(
            option,
            NbdRep.ERR_POLICY,
            `${opt} is refused: this server needs a token, name an export as VOLUME/TOKEN`,
          ));
          break;
        }
        const replies = ctx.listExports().map((n) =>
          encodeOptionReply(option, NbdRep.SERVER, encodeServerEntry(n))
        );
        await write(concatBytes([...replies, encodeOptionReply(option, NbdRep.ACK)]));
        break;
      }
      case NbdOpt.INFO:
      case NbdOpt.GO: {
        const req = parseInfoRequest(data);
        if (!req.ok) {
          const why = describeParseError(req.error);
          await write(encodeOptionError(option, NbdRep.ERR_INVALID, `${opt}: ${why}`));
          break;
        }
        const access = authorizeExport(req.value.name, ctx.token);
        if (!access.ok) {
          if (await refused(option, access)) return closed;
          break;
        }
        const device = ctx.lookup(access.volume);
        if (!device) {
          await write(encodeOptionError(
            option,
            NbdRep.ERR_UNKNOWN,
            `Export "${access.volume}" does not exist`,
          ));
          break;
        }
        await write(concatBytes([
          encodeOptionReply(
            option,
            NbdRep.INFO,
            encodeInfoExport(device.sizeBytes, flagsFor(structured)),
          ),
          encodeOptionReply(
            option,
            NbdRep.INFO,
            encodeInfoBlockSize(blockBytesMin, blockBytesPreferred, ctx.requestBytesMax),
          ),
          encodeOptionReply(option, NbdRep.ACK),
        ]));
        if (option === NbdOpt.GO) {
          return {
            kind: "transmission",
            exportName: access.volume,
            device,
            structured,
            contexts: contextsFor(access.volume),
          };
        }
        break;
      }
      case NbdOpt.LIST_META_CONTEXT:
      case NbdOpt.SET_META_CONTEXT: {
        const setting = option === NbdOpt.SET_META_CONTEXT;
        // A SET replaces the selection even when it fails.
        if (setting) selected = undefined;
        if (setting && !structured) {
          await write(encodeOptionError(
            option,
            NbdRep.ERR_INVALID,
            `${opt} needs NBD_OPT_STRUCTURED_REPLY first (block status replies are structured)`,
          ));
          break;
        }
        const req = parseMetaContextRequest(data);
        if (!req.ok) {
          const why = describeParseError(req.error);
          await write(encodeOptionError(option, NbdRep.ERR_INVALID, `${opt}: ${why}`));
          break;
        }
        const access = authorizeExport(req.value.name, ctx.token);
        if (!access.ok) {
          if (await refused(option, access)) return closed;
          break;
        }
        if (!ctx.lookup(access.volume)) {
          await write(encodeOptionError(
            option,
            NbdRep.ERR_UNKNOWN,
            `Export "${access.volume}" does not exist`,
          ));
          break;
        }
        const offered = ctx.offeredContexts?.(access.volume) ?? [];
        const chosen = setting
          ? selectContexts(offered, req.value.queries)
          : listContexts(offered, req.value.queries);
        if (setting) selected = { volume: access.volume, contexts: chosen };
        // In a list the context id is reserved and sent as zero.
        const replies = chosen.map((c) =>
          encodeOptionReply(
            option,
            NbdRep.META_CONTEXT,
            encodeMetaContext(setting ? c.id : 0, c.name),
          )
        );
        await write(concatBytes([...replies, encodeOptionReply(option, NbdRep.ACK)]));
        break;
      }
      case NbdOpt.STRUCTURED_REPLY:
        if (length !== 0) {
          await write(encodeOptionError(option, NbdRep.ERR_INVALID, `${opt} takes no data`));
          break;
        }
        structured = true;
        await write(encodeOptionReply(option, NbdRep.ACK));
        break;
      default:
        await write(encodeOptionError(option, NbdRep.ERR_UNSUP, `${opt} is not supported`));
    }
  }
}

/** Transmission flags for an export, given whether structured replies were negotiated. */
export const flagsFor = (structured: boolean): number =>
  transmissionFlagsBase | (structured ? NbdFlag.SEND_DF : 0);
