/**
 * The transmission phase of one NBD connection: read request headers while earlier requests are
 * still executing, run each against the BlockDevice, and send replies as they complete (out of
 * order, matched by cookie). Every request is checked by `checkRequest` before the device sees it;
 * a refused request never reaches the device. A WRITE reaches the device only once its whole
 * payload has arrived, so a client that hangs up mid-payload has written nothing.
 */
import {
  allocationScanBytesMax,
  blockStatusReply,
  type DirtyExtentSource,
} from "./block_status.ts";
import type { MetaContext } from "./meta_context.ts";
import { PayloadPool } from "./payload_pool.ts";
import type { BlockDevice } from "../../src/block_device.ts";
import { diskErrorCode } from "../../src/fault_file.ts";
import {
  commandName,
  describeParseError,
  encodeOffsetDataHeader,
  encodeSimpleReply,
  encodeStructuredError,
  NbdCmd,
  NbdCmdFlag,
  NbdError,
  parseRequestHeader,
  type RequestHeader,
  requestHeaderBytes,
} from "./protocol.ts";
import type { SocketReader } from "./reader.ts";
import { checkRequest, payloadBytes, type RequestLimits } from "./request.ts";
import type { ReplyWriter } from "./writer.ts";

export interface TransmissionOptions {
  exportName: string;
  device: BlockDevice;
  structured: boolean;
  /** Metadata contexts selected in the handshake; none: NBD_CMD_BLOCK_STATUS is refused. */
  contexts?: MetaContext[];
  /** The export's dirty record, for the `trackmirror:dirty` context. */
  dirty?: DirtyExtentSource;
  /** Largest READ / WRITE, and the largest piece a TRIM or WRITE_ZEROES is split into. */
  requestBytesMax: number;
  /** Requests in flight (read, not yet answered) before the server stops reading the socket. */
  inflightMax: number;
  /** READ / WRITE bytes in flight before the server stops reading the socket. */
  inflightBytesMax: number;
  log(message: string): void;
}

/** Why the request loop ended. */
type LoopEnd = "eof" | "disconnect" | "hang-up";

export class Transmission {
  readonly #reader: SocketReader;
  readonly #writer: ReplyWriter;
  readonly #close: () => void;
  readonly #opts: TransmissionOptions;
  readonly #limits: RequestLimits;
  /** Reused buffers for large write payloads (see nbd_payload_pool.ts). */
  readonly #payloads = new PayloadPool();
  #inflight = 0;
  #inflightBytes = 0;
  #slotFree: (() => void) | undefined;
  #idle: (() => void)[] = [];

  /** `close` closes the socket; it must be safe to call more than once. */
  constructor(
    reader: SocketReader,
    writer: ReplyWriter,
    close: () => void,
    opts: TransmissionOptions,
  ) {
    this.#reader = reader;
    this.#writer = writer;
    this.#close = close;
    this.#opts = opts;
    this.#limits = {
      exportName: opts.exportName,
      sizeBytes: opts.device.sizeBytes,
      requestBytesMax: opts.requestBytesMax,
      structured: opts.structured,
      shuttingDown: false,
      blockStatus: (opts.contexts?.length ?? 0) > 0,
    };
  }

  /** Requests read and not yet answered. */
  get inflight(): number {
    return this.#inflight;
  }

  /**
   * Serves requests until the client disconnects or breaks the protocol. Resolves once every
   * request it started has finished at the device and the socket is closed.
   */
  async run(): Promise<void> {
    let end: LoopEnd = "hang-up";
    try {
      end = await this.#loop();
    } catch (err) {
      if (!isSocketGone(err)) this.#opts.log(`Connection read failed: ${describe(err)}`);
    }
    // A protocol violation ends the session now; DISC and EOF let the requests in flight answer.
    if (end === "hang-up") this.#close();
    await this.#settled();
    await this.#writer.drained();
    this.#close();
  }

  /**
   * Server shutdown: new requests are refused with ESHUTDOWN and the socket closes as soon as
   * nothing is in flight.
   */
  shutdown(): void {
    this.#limits.shuttingDown = true;
    if (this.#inflight === 0) this.#close();
  }

  async #loop(): Promise<LoopEnd> {
    const reader = this.#reader;
    for (;;) {
      while (
        this.#inflight >= this.#opts.inflightMax ||
        (this.#inflightBytes >= this.#opts.inflightBytesMax && this.#inflight > 0)
      ) {
        await new Promise<void>((resolve) => this.#slotFree = resolve);
      }
      if (reader.buffered < requestHeaderBytes && !(await reader.fill(requestHeaderBytes))) {
        if (reader.buffered > 0) {
          this.#opts.log(`Client hung up inside a request header (${reader.buffered} bytes)`);
        }
        return "eof";
      }
      const parsed = parseRequestHeader(reader.view, reader.start);
      reader.consume(requestHeaderBytes);
      if (!parsed.ok) {
        this.#opts.log(`Closing connection: request header: ${describeParseError(parsed.error)}`);
        return "hang-up";
      }
      const h = parsed.value;
      const verdict = checkRequest(h, this.#limits);
      switch (verdict.kind) {
        case "disconnect":
          return "disconnect";
        case "refuse": {
          if (!(await reader.skip(payloadBytes(h)))) return "eof";
          this.#track(Promise.resolve(this.#errorReply(h, verdict.error, verdict.message)), 0);
          break;
        }
        case "execute": {
          let payload: Uint8Array | undefined;
          if (h.type === NbdCmd.WRITE) payload = this.#payloads.take(h.length);
          if (payload && reader.buffered >= h.length) {
            reader.takeInto(payload); // the common small write: no await
          } else if (payload) {
            if (!(await reader.readExactly(payload))) {
              this.#opts.log(`Client hung up inside the payload of ${describeRequest(h)}`);
              return "eof";
            }
          }
          const cost = h.type === NbdCmd.READ || h.type === NbdCmd.WRITE
            ? h.length
            : h.type === NbdCmd.BLOCK_STATUS
            ? Math.min(h.length, allocationScanBytesMax)
            : 0;
          // The payload goes back to the pool once the reply is written: the device's write
          // resolved before, and no layer keeps write data past that (payload_pool.ts).
          this.#track(this.#execute(h, payload), cost, payload);
        }
      }
    }
  }

  /** Counts a request in flight until its reply has been written. */
  #track(reply: Promise<Uint8Array[]>, costBytes: number, payload?: Uint8Array): void {
    this.#inflight++;
    this.#inflightBytes += costBytes;
    reply.then((pieces) => this.#writer.send(pieces, () => this.#release(costBytes, payload)));
  }

  #release(costBytes: number, payload?: Uint8Array): void {
    if (payload) this.#payloads.give(payload);
    this.#inflight--;
    this.#inflightBytes -= costBytes;
    const resume = this.#slotFree;
    if (resume) {
      this.#slotFree = undefined;
      resume();
    }
    if (this.#inflight === 0) {
      for (const resolve of this.#idle.splice(0)) resolve();
      if (this.#limits.shuttingDown) this.#close();
    }
  }

  #settled(): Promise<void> {
    if (this.#inflight === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /** Runs a checked request at the device; resolves to its reply, never rejects. */
  async #execute(h: RequestHeader, payload: Uint8Array | undefined): Promise<Uint8Array[]> {
    const device = this.#opts.device;
    const fua = (h.flags & NbdCmdFlag.FUA) !== 0 ? { fua: true } : undefined;
    try {
      switch (h.type) {
        case NbdCmd.READ: {
          const data = await device.read(h.offset, h.length);
          if (data.length !== h.length) {
            throw new Error(`Device returned ${data.length} bytes for a read of ${h.length}`);
          }
          return this.#opts.structured
            ? [encodeOffsetDataHeader(h.cookie, h.offset, h.length, true), data]
            : [encodeSimpleReply(0, h.cookie), data];
        }
        case NbdCmd.WRITE:
          await device.write(h.offset, payload!, fua);
          break;
        case NbdCmd.FLUSH:
          await device.flush();
          break;
        case NbdCmd.BLOCK_STATUS:
          return await blockStatusReply(
            {
              cookie: h.cookie,
              offset: h.offset,
              length: h.length,
              one: (h.flags & NbdCmdFlag.REQ_ONE) !== 0,
            },
            this.#opts.contexts ?? [],
            device,
            this.#opts.dirty,
          );
        case NbdCmd.TRIM:
        case NbdCmd.WRITE_ZEROES: {
          const step = this.#opts.requestBytesMax;
          for (let done = 0; done < h.length; done += step) {
            const n = Math.min(step, h.length - done);
            if (h.type === NbdCmd.TRIM) await device.trim(h.offset + done, n, fua);
            else await device.writeZeroes(h.offset + done, n, fua);
          }
          break;
        }
        default:
          throw new Error(`${commandName(h.type)} passed the request check`);
      }
      return [encodeSimpleReply(0, h.cookie)];
    } catch (err) {
      const message = `${describeRequest(h)} failed: ${describe(err)}`;
      this.#opts.log(message);
      // A full disk is told as NBD_ENOSPC (a client may free room and retry); the rest as EIO.
      const error = diskErrorCode(err) === "ENOSPC" ? NbdError.ENOSPC : NbdError.EIO;
      return this.#errorReply(h, error, message);
    }
  }

  /** An error reply: a structured error chunk with a message when negotiated, else simple. */
  #errorReply(h: RequestHeader, error: number, message: string): Uint8Array[] {
    return this.#opts.structured
      ? [encodeStructuredError(h.cookie, error, message)]
      : [encodeSimpleReply(error, h.cookie)];
  }
}

const describeRequest = (h: RequestHeader) => `${commandName(h.type)} at ${h.offset}+${h.length}`;

const describe = (err: unknown) => err instanceof Error ? err.message : String(err);

/** Errors that only mean the peer or our own close() ended the socket. */
export function isSocketGone(err: unknown): boolean {
  return err instanceof Deno.errors.BadResource || err instanceof Deno.errors.Interrupted ||
    err instanceof Deno.errors.ConnectionReset || err instanceof Deno.errors.BrokenPipe ||
    err instanceof Deno.errors.ConnectionAborted || err instanceof Deno.errors.NotConnected;
}
