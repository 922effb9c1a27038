/**
 * The host agent's NBD server: exposes each volume (a BlockDevice, looked up by export name) to any
 * NBD client — qemu-img, nbdcopy, nbdfuse, the kernel — over TCP and optionally a unix socket.
 * It only speaks the protocol; what a write does is the device's business.
 *
 * Memory per connection is bounded: the 256 KiB read buffer and 256 KiB reply batch buffer, plus
 * at most `inflightBytesMax` + `requestBytesMax` of READ / WRITE data in flight (the server stops
 * reading the socket while `inflightMax` requests or `inflightBytesMax` bytes are in flight). With
 * the defaults that is under 97 MiB per connection, and `connectionsMax` connections at most.
 *
 * A device call that never returns holds close() forever: requests in flight are never abandoned,
 * so no write can land on a device after its owner believes the server stopped.
 */
import type { BlockDevice } from "../../src/block_device.ts";
import { nbdRequestBytesMaxDefault } from "../../src/limits.ts";
import type { DirtyExtentSource } from "./block_status.ts";
import { blockBytesPreferred, negotiate } from "./handshake.ts";
import { baseAllocation, type MetaContext, trackmirrorDirty } from "./meta_context.ts";
import { SocketReader } from "./reader.ts";
import { isSocketGone, Transmission } from "./transmission.ts";
import { ReplyWriter } from "./writer.ts";
import { logLine } from "../../src/events.ts";

/** The IANA port for NBD. */
export const nbdPortDefault = 10809;
/** Largest READ / WRITE: 2^25, the length the spec says any client may use. */
export const requestBytesMaxDefault = nbdRequestBytesMaxDefault;
/** Bounds accepted for `requestBytesMax`: at least the preferred block size, at most 256 MiB. */
export const requestBytesMaxLimit = 256 * 1024 * 1024;
/** Requests read from one connection and not yet answered. */
export const inflightMaxDefault = 64;
/** READ / WRITE bytes in flight on one connection. */
export const inflightBytesMaxDefault = 64 * 1024 * 1024;
/** Open connections (handshaking or transmitting); more are closed on accept. */
export const connectionsMaxDefault = 128;
/** A client must reach the transmission phase within this time, or it is disconnected. */
export const handshakeTimeoutMsDefault = 10_000;
/**
 * On close(), requests in flight get this long to answer before their sockets are closed; the
 * device calls themselves are still awaited.
 */
export const shutdownGraceMsDefault = 5_000;
/** Pause after a failed accept, so a persistent failure does not spin. */
const acceptRetryMs = 100;
/** Socket read buffer per connection; many pipelined small requests arrive in one read. */
const readBufferBytes = 256 * 1024;

export interface NbdServerOptions {
  /** The device serving an export name (a volume name), or undefined when there is none. */
  lookup(exportName: string): BlockDevice | undefined;
  /** Export names for NBD_OPT_LIST. */
  listExports(): string[];
  /**
   * The dirty record of a volume, served as the `trackmirror:dirty` metadata context; absent, or
   * undefined for a volume: that context is not offered for it (`base:allocation` always is).
   */
  dirtySource?(exportName: string): DirtyExtentSource | undefined;
  /**
   * When set, a client names an export VOLUME/TOKEN (export_auth.ts) and `lookup` is asked for
   * VOLUME only once TOKEN matched; NBD_OPT_LIST is refused.
   */
  token?: string;
  /** TCP address; default 127.0.0.1:10809. Port 0 picks a free port. */
  hostname?: string;
  port?: number;
  /** Also listen on this unix socket path. */
  socketPath?: string;
  requestBytesMax?: number;
  inflightMax?: number;
  inflightBytesMax?: number;
  connectionsMax?: number;
  handshakeTimeoutMs?: number;
  shutdownGraceMs?: number;
  /** Where protocol violations and device errors are reported; default console.warn. */
  log?: (message: string) => void;
}

export interface NbdServer {
  /** The TCP address listened on. */
  readonly addr: Deno.NetAddr;
  readonly port: number;
  readonly socketPath: string | undefined;
  /** Connections currently open. */
  readonly connections: number;
  /** Stops listening and closes every connection after its requests in flight finished. */
  close(): Promise<void>;
}

/** Starts serving; listening has begun when it returns. */
export function serveNbd(options: NbdServerOptions): NbdServer {
  return new Server(options);
}

interface Settings {
  requestBytesMax: number;
  inflightMax: number;
  inflightBytesMax: number;
  connectionsMax: number;
  handshakeTimeoutMs: number;
  shutdownGraceMs: number;
  log: (message: string) => void;
}

function settings(o: NbdServerOptions): Settings {
  const s: Settings = {
    requestBytesMax: o.requestBytesMax ?? requestBytesMaxDefault,
    inflightMax: o.inflightMax ?? inflightMaxDefault,
    inflightBytesMax: o.inflightBytesMax ?? inflightBytesMaxDefault,
    connectionsMax: o.connectionsMax ?? connectionsMaxDefault,
    handshakeTimeoutMs: o.handshakeTimeoutMs ?? handshakeTimeoutMsDefault,
    shutdownGraceMs: o.shutdownGraceMs ?? shutdownGraceMsDefault,
    log: o.log ?? ((m) => logLine("host", "warn", `nbd: ${m}`)),
  };
  const r = s.requestBytesMax;
  if (!Number.isSafeInteger(r) || r < blockBytesPreferred || r > requestBytesMaxLimit) {
    throw new RangeError(
      `requestBytesMax ${r} must be a whole number from ${blockBytesPreferred} to ${requestBytesMaxLimit}`,
    );
  }
  for (const key of ["inflightMax", "inflightBytesMax", "connectionsMax"] as const) {
    if (!Number.isSafeInteger(s[key]) || s[key] < 1) {
      throw new RangeError(`${key} ${s[key]} must be a whole number >= 1`);
    }
  }
  return s;
}

class Server implements NbdServer {
  readonly #options: NbdServerOptions;
  readonly #settings: Settings;
  readonly #tcp: Deno.TcpListener;
  readonly #unix: Deno.UnixListener | undefined;
  readonly #connections = new Set<Connection>();
  readonly #accepting: Promise<void>[] = [];
  #closing: Promise<void> | undefined;

  constructor(options: NbdServerOptions) {
    this.#options = options;
    this.#settings = settings(options);
    this.#tcp = Deno.listen({
      hostname: options.hostname ?? "127.0.0.1",
      port: options.port ?? nbdPortDefault,
    });
    try {
      this.#unix = options.socketPath === undefined
        ? undefined
        : Deno.listen({ transport: "unix", path: options.socketPath });
    } catch (err) {
      this.#tcp.close();
      throw err;
    }
    this.#accepting.push(this.#accept(this.#tcp, true));
    if (this.#unix) this.#accepting.push(this.#accept(this.#unix, false));
  }

  get addr(): Deno.NetAddr {
    return this.#tcp.addr;
  }

  get port(): number {
    return this.#tcp.addr.port;
  }

  get socketPath(): string | undefined {
    return this.#options.socketPath;
  }

  get connections(): number {
    return this.#connections.size;
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    for (const l of [this.#tcp, this.#unix]) {
      try {
        l?.close();
      } catch {
        // already closed
      }
    }
    await Promise.all(this.#accepting);
    const conns = [...this.#connections];
    for (const c of conns) c.shutdown();
    const grace = setTimeout(
      () => conns.forEach((c) => c.closeSocket()),
      this.#settings.shutdownGraceMs,
    );
    await Promise.all(conns.map((c) => c.done));
    clearTimeout(grace);
    if (this.#unix) {
      await Deno.remove(this.#options.socketPath!).catch(() => {});
    }
  }

  async #accept(listener: Deno.Listener, tcp: boolean): Promise<void> {
    for (;;) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (err) {
        if (this.#closing || isSocketGone(err)) return;
        this.#settings.log(`Accept failed: ${err instanceof Error ? err.message : err}`);
        await new Promise((r) => setTimeout(r, acceptRetryMs)); // e.g. out of file descriptors
        continue;
      }
      if (this.#closing || this.#connections.size >= this.#settings.connectionsMax) {
        if (!this.#closing) {
          this.#settings.log(`Refusing connection: ${this.#settings.connectionsMax} already open`);
        }
        conn.close();
        continue;
      }
      try {
        // Replies are written whole; Nagle would only delay the small ones (the spec asks this).
        if (tcp) (conn as Deno.TcpConn).setNoDelay(true);
      } catch {
        // the peer already reset the connection; the handshake will notice
      }
      const c = new Connection(conn, this.#options, this.#settings);
      this.#connections.add(c);
      c.done.then(() => this.#connections.delete(c));
    }
  }
}

/** One client connection: handshake, then transmission. */
class Connection {
  readonly done: Promise<void>;
  readonly #conn: Deno.Conn;
  #closed = false;
  #transmission: Transmission | undefined;

  constructor(conn: Deno.Conn, options: NbdServerOptions, s: Settings) {
    this.#conn = conn;
    this.done = this.#serve(options, s).catch((err) => {
      s.log(`Connection failed: ${err instanceof Error ? err.message : err}`);
      this.closeSocket();
    });
  }

  closeSocket(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // already closed by the peer's reset
    }
  }

  /** Server shutdown: a connection still haggling is closed, one transmitting drains first. */
  shutdown(): void {
    if (this.#transmission) this.#transmission.shutdown();
    else this.closeSocket();
  }

  async #serve(options: NbdServerOptions, s: Settings): Promise<void> {
    const reader = new SocketReader(this.#conn, readBufferBytes);
    const timer = setTimeout(() => {
      s.log(`Closing connection: no export chosen within ${s.handshakeTimeoutMs} ms`);
      this.closeSocket();
    }, s.handshakeTimeoutMs);
    let result;
    try {
      result = await negotiate(reader, (b) => writeAll(this.#conn, b), {
        lookup: options.lookup,
        listExports: options.listExports,
        offeredContexts: (volume) => offeredContexts(options, volume),
        token: options.token,
        requestBytesMax: s.requestBytesMax,
        log: s.log,
      });
    } catch (err) {
      if (!isSocketGone(err)) {
        s.log(`Handshake failed: ${err instanceof Error ? err.message : err}`);
      }
      result = { kind: "closed" } as const;
    } finally {
      clearTimeout(timer);
    }
    if (result.kind === "closed" || this.#closed) {
      this.closeSocket();
      return;
    }
    const writer = new ReplyWriter(this.#conn, (err) => {
      if (!isSocketGone(err)) {
        s.log(`Reply write failed: ${err instanceof Error ? err.message : err}`);
      }
      this.closeSocket();
    });
    this.#transmission = new Transmission(reader, writer, () => this.closeSocket(), {
      exportName: result.exportName,
      device: result.device,
      structured: result.structured,
      contexts: result.contexts,
      dirty: options.dirtySource?.(result.exportName),
      requestBytesMax: s.requestBytesMax,
      inflightMax: s.inflightMax,
      inflightBytesMax: s.inflightBytesMax,
      log: s.log,
    });
    await this.#transmission.run();
  }
}

/** `base:allocation` for every export; `trackmirror:dirty` where the export has a dirty record. */
function offeredContexts(options: NbdServerOptions, volume: string): MetaContext[] {
  return options.dirtySource?.(volume) ? [baseAllocation, trackmirrorDirty] : [baseAllocation];
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.length) done += await conn.write(bytes.subarray(done));
}
