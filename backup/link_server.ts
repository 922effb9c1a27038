/**
 * The backup's end of the link (src/link_protocol.ts): accepts host agents on TCP (no-delay: with
 * Nagle on, receipt acks collapsed to 4k/s) and optionally a unix socket, and turns their RECORDS
 * frames into journal appends.
 *
 * Per connection: HELLO must carry the backup's token when it has one (compared in constant time,
 * src/token.ts; ERROR 401 and close otherwise, before anything is registered); then it registers the announced volumes (creating secondaries as PUT
 * /v1/volumes does) and raises the epoch fence for each, so frames of an older connection still
 * queued in the journal are refused when the journal orders them; then WELCOME with credit; then
 * frames in order (sequence 1, 2, 3...). Each RECORDS payload is verified (link_check.ts) and
 * appended unchanged; the journal's `admit` refuses it if the fence moved past the connection's
 * epoch or the connection already failed. Reading does not wait for durability: frames are
 * pipelined, bounded by the credit the host was granted.
 *
 * Acks are cumulative and coalesced: everything that becomes durable in one step of the event
 * loop is answered by one frame naming the highest sequence, sent on a microtask after the
 * journal resolved the whole group. RECEIVED is sent at once, as the frame is queued for the
 * journal and before the journal writes it (the journal starts a group one microtask after an
 * append): at depth 1 it waited ~35 µs behind that write and the fdatasync's dispatch.
 *
 * Any failure (bad frame, out-of-order sequence, journal refusal, fence) sends ERROR and closes
 * the connection; from then on nothing else from it reaches the journal. A journal that cannot
 * take writes (full, a write or sync failed: `Journal.degradedReason`) refuses a HELLO with ERROR
 * 503 naming the reason, and a failed append fails its connection with ERROR 503; the server
 * itself stays up. On an open connection a full journal withholds credit (flow control).
 *
 * Credit is the journal's room (journalBytesMax - pending, plus this connection's own bytes not
 * yet durable), at most `inflightBytesMax`. A connection whose credit is short tells the journal
 * (`wantRoom`, so the applier checkpoints now rather than at its next bound) and grants the room
 * the moment the journal reclaims it (`onRoom`): the host, out of credit, sends nothing that
 * could bring an ack, so waiting for one would stall it until its ack timeout.
 */
import { ServiceError, unauthorized } from "../src/errors.ts";
import {
  type AckMode,
  encodeAckFrame,
  encodeJsonFrame,
  type Frame,
  frameJson,
  FrameReader,
  FrameType,
  type LinkError,
  type LinkHello,
  linkInflightBytesMax,
  type LinkWelcome,
  writeAll,
} from "../src/link_protocol.ts";
import type { Metrics } from "../src/metrics.ts";
import { checkName } from "../src/schemas.ts";
import { tokenMatches } from "../src/token.ts";
import { EpochFence } from "./epoch_fence.ts";
import type { Journal } from "./journal.ts";
import { checkRecords } from "./link_check.ts";
import type { SecondaryStore } from "./secondary_store.ts";
import { logLine } from "../src/events.ts";
import { concatBytes } from "../src/bytes.ts";

/** What the link server works on. */
export interface LinkServerDeps {
  journal: Journal;
  store: SecondaryStore;
  /** The epoch fence; share the HTTP routes' one if both paths carry a host's writes. */
  fence?: EpochFence;
  metrics?: Metrics;
  /** Largest credit granted (tests lower it). */
  inflightBytesMax?: number;
  /** When set, a HELLO must carry it (the backup's `--token`). */
  token?: string;
}

/** Where the link server listens. */
export interface LinkListenOptions {
  hostname?: string;
  /** TCP port (0 picks a free one); undefined: no TCP listener. */
  port?: number;
  /** Unix socket path; undefined: none. */
  socketPath?: string;
}

/** The link listener(s) of one backup. */
export class LinkServer {
  readonly fence: EpochFence;
  readonly #listeners: Deno.Listener[] = [];
  readonly #sessions = new Set<LinkSession>();
  readonly #loops: Promise<void>[] = [];
  #closed = false;

  constructor(readonly deps: LinkServerDeps) {
    this.fence = deps.fence ?? new EpochFence();
  }

  /** Opens the listeners and starts accepting. */
  static listen(deps: LinkServerDeps, opts: LinkListenOptions): LinkServer {
    const server = new LinkServer(deps);
    if (opts.port !== undefined) {
      server.#accept(
        Deno.listen({ hostname: opts.hostname ?? "127.0.0.1", port: opts.port, transport: "tcp" }),
      );
    }
    if (opts.socketPath !== undefined) {
      try {
        Deno.removeSync(opts.socketPath);
      } catch { /* absent */ }
      server.#accept(Deno.listen({ path: opts.socketPath, transport: "unix" }));
    }
    return server;
  }

  /** Where the listeners listen: "tcp://host:port" or a socket path. */
  get addresses(): string[] {
    return this.#listeners.map((l) => {
      const a = l.addr;
      if (a.transport === "unix" || a.transport === "unixpacket") return a.path;
      if (a.transport === "tcp" || a.transport === "udp") return `tcp://${a.hostname}:${a.port}`;
      return String(a.transport);
    });
  }

  /** The TCP port, when listening on TCP. */
  get port(): number | undefined {
    for (const l of this.#listeners) {
      const a = l.addr;
      if (a.transport === "tcp") return a.port;
    }
    return undefined;
  }

  /**
   * True while a welcomed host acknowledges on receipt: its RECEIVED acks are sent from the event
   * loop as frames arrive, so the journal must not block the loop with an inline sync.
   */
  get receivedLinkOpen(): boolean {
    for (const s of this.#sessions) if (s.ack === "received") return true;
    return false;
  }

  /** Serves one accepted connection until it ends (exposed for in-process tests). */
  serve(conn: Deno.Conn): Promise<void> {
    const session = new LinkSession(this, conn);
    this.#sessions.add(session);
    return session.run().finally(() => this.#sessions.delete(session));
  }

  /** Stops accepting and closes every connection. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const l of this.#listeners) l.close();
    for (const s of this.#sessions) s.fail(new ServiceError(503, "The backup is shutting down"));
    await Promise.allSettled(this.#loops);
  }

  #accept(listener: Deno.Listener): void {
    this.#listeners.push(listener);
    this.#loops.push((async () => {
      const served: Promise<void>[] = [];
      try {
        for await (const conn of listener) {
          if (conn.remoteAddr.transport === "tcp") (conn as Deno.TcpConn).setNoDelay(true);
          served.push(this.serve(conn));
        }
      } catch (err) {
        if (!this.#closed) {
          logLine("backup", "error", `Link: accept failed: ${(err as Error).message}`);
        }
      }
      await Promise.allSettled(served);
    })());
  }
}

/** One host's connection. */
class LinkSession {
  readonly #reader: FrameReader;
  #ack: AckMode = "durable";
  readonly #volumes = new Map<
    string,
    { sizeBytes: number; epoch: number; leaseEpoch: number | undefined }
  >();
  #failed: Error | undefined;
  #lastSeq = 0;
  #receivedSeq = 0;
  #durableSeq = 0;
  #sentReceived = 0;
  #sentDurable = 0;
  #sentCredit = -1;
  /** RECORDS bytes appended and not yet durable. */
  #undurableBytes = 0;
  #flushQueued = false;
  #creditQueued = false;
  /** Unsubscribes from the journal's room signal (set once welcomed). */
  #unsubscribeRoom: (() => void) | undefined;
  #writing: Promise<void> = Promise.resolve();
  /** Frames handed to `#send` whose socket write has not finished. */
  #sending = 0;

  /** The session's acknowledgement mode (durable until a HELLO says otherwise). */
  get ack(): AckMode {
    return this.#ack;
  }

  constructor(private readonly server: LinkServer, private readonly conn: Deno.Conn) {
    const { payloads } = server.deps.journal;
    this.#reader = new FrameReader(conn, (bytes) => payloads.take(bytes));
  }

  async run(): Promise<void> {
    try {
      const hello = await this.#reader.next();
      if (hello === null) return;
      if (hello.type !== FrameType.hello) {
        throw new ServiceError(400, `First frame has type ${hello.type}, not HELLO`);
      }
      const greeting = frameJson<LinkHello>(hello);
      this.#authenticate(greeting);
      await this.#welcome(greeting);
      for (;;) {
        const frame = await this.#reader.next();
        if (frame === null || this.#failed) break;
        this.#records(frame);
      }
    } catch (err) {
      this.fail(err as Error);
    } finally {
      await this.#writing;
      this.#close();
    }
  }

  /** Sends ERROR (once) and closes; nothing more of this connection reaches the journal. */
  fail(err: Error): void {
    if (this.#failed) return;
    this.#failed = err;
    const status = err instanceof ServiceError ? err.status : 400;
    this.#send(encodeJsonFrame(FrameType.error, { status, message: err.message } as LinkError));
    void this.#writing.finally(() => this.#close());
  }

  #close(): void {
    this.#unsubscribeRoom?.();
    this.#unsubscribeRoom = undefined;
    this.#failed ??= new Error("The connection closed");
    try {
      this.conn.close();
    } catch { /* already closed */ }
  }

  /** Refuses a HELLO without the backup's token, before it touches any volume or epoch. */
  #authenticate(hello: LinkHello): void {
    const expected = this.server.deps.token;
    if (expected === undefined) return;
    const presented = typeof hello?.token === "string" ? hello.token : undefined;
    if (tokenMatches(presented, expected)) return;
    const why = presented === undefined ? "carries no token" : "carries a wrong token";
    logLine(
      "backup",
      "warn",
      `Link: refused HELLO of host ${JSON.stringify(hello?.hostId)}: it ${why}`,
    );
    throw unauthorized(`HELLO ${why}: the backup needs its --token`);
  }

  async #welcome(hello: LinkHello): Promise<void> {
    const { store, metrics } = this.server.deps;
    if (hello.ack !== "durable" && hello.ack !== "received") {
      throw new ServiceError(400, `HELLO ack mode "${hello.ack}" must be durable or received`);
    }
    if (!Array.isArray(hello.volumes)) throw new ServiceError(400, "HELLO carries no volumes");
    const degraded = this.server.deps.journal.degradedReason();
    if (degraded !== null) {
      metrics?.count(
        "trackmirror_backup_link_refused_total",
        "HELLOs refused because the journal could not take writes",
      );
      throw new ServiceError(503, `The backup cannot take writes: ${degraded}`);
    }
    this.#ack = hello.ack;
    const { fence } = this.server;
    // Every volume is checked before any is registered: a refused HELLO changes nothing. The
    // fence is (lease epoch, link epoch): an older lease epoch is refused as fenced, a bad or
    // forged epoch with 400 (epoch_fence.ts).
    for (const v of hello.volumes) {
      try {
        checkName("Volume", v.name);
      } catch (err) {
        throw new ServiceError(400, (err as Error).message);
      }
      if (!Number.isSafeInteger(v.sizeBytes) || v.sizeBytes < 1) {
        throw new ServiceError(400, `Volume "${v.name}" size ${v.sizeBytes} must be >= 1`);
      }
      if (!Number.isSafeInteger(v.epoch) || v.epoch < 0) {
        throw new ServiceError(400, `Volume "${v.name}" epoch ${v.epoch} must be >= 0`);
      }
      fence.check(v.name, { epoch: v.epoch, leaseEpoch: v.leaseEpoch });
    }
    const results: LinkWelcome["volumes"] = [];
    for (const v of hello.volumes) {
      const created = await store.register(v.name, v.sizeBytes);
      if (created) {
        metrics?.count("trackmirror_backup_volumes_created_total", "Secondaries created");
      }
      fence.raise(v.name, { epoch: v.epoch, leaseEpoch: v.leaseEpoch });
      fence.admit(v.name, v.epoch, v.leaseEpoch);
      this.#volumes.set(v.name, {
        sizeBytes: v.sizeBytes,
        epoch: v.epoch,
        leaseEpoch: v.leaseEpoch,
      });
      results.push({ name: v.name, created });
    }
    const credit = this.#credit();
    this.#sentCredit = credit;
    this.#send(encodeJsonFrame(FrameType.welcome, { credit, volumes: results } as LinkWelcome));
    this.#unsubscribeRoom = this.server.deps.journal.onRoom(() => this.#queueCredit());
    if (credit < this.#creditMax()) this.server.deps.journal.wantRoom();
  }

  #records(frame: Frame): void {
    const { journal } = this.server.deps;
    if (frame.type !== FrameType.records) {
      throw new ServiceError(400, `Frame type ${frame.type} is not RECORDS`);
    }
    if (frame.sequence !== this.#lastSeq + 1) {
      throw new ServiceError(400, `Frame sequence ${frame.sequence} follows ${this.#lastSeq}`);
    }
    this.#lastSeq = frame.sequence;
    const summary = checkRecords(frame.payload, (v) => this.#volumes.get(v)?.sizeBytes);
    const seq = frame.sequence;
    const bytes = frame.payload.length;
    const admit = () => {
      if (this.#failed) throw new ServiceError(409, `Link connection failed before frame ${seq}`);
      for (const v of summary.volumes) {
        const { epoch, leaseEpoch } = this.#volumes.get(v)!;
        this.server.fence.admit(v, epoch, leaseEpoch);
      }
    };
    // Throws synchronously when the journal has no room: the host overran its credit.
    const durable = journal.append(frame.payload, summary.records, admit);
    this.#undurableBytes += bytes;
    durable.then(() => {
      this.#undurableBytes -= bytes;
      this.#durableSeq = seq;
      this.#queueFlush();
    }, (err) => {
      this.#undurableBytes -= bytes;
      this.fail(err as Error);
    });
    this.server.deps.metrics?.count(
      "trackmirror_backup_link_frames_total",
      "RECORDS frames received on the link",
    );
    if (this.#ack === "received") {
      this.#receivedSeq = seq;
      this.#flush(false);
    }
  }

  #credit(): number {
    const { journal } = this.server.deps;
    const room = journal.journalBytesMax - journal.pendingBytes + this.#undurableBytes;
    return Math.max(0, Math.min(room, this.#creditMax()));
  }

  /** The most credit this connection is ever granted: below it, the journal's room limits it. */
  #creditMax(): number {
    return Math.min(
      this.server.deps.journal.journalBytesMax,
      this.server.deps.inflightBytesMax ?? linkInflightBytesMax,
    );
  }

  /** The journal reclaimed room: grant it (once for everything reclaimed in this step). */
  #queueCredit(): void {
    if (this.#creditQueued || this.#failed) return;
    this.#creditQueued = true;
    queueMicrotask(() => {
      this.#creditQueued = false;
      this.#flush(true);
    });
  }

  /** Sends the acks due, once for everything resolved in this step of the event loop. */
  #queueFlush(): void {
    if (this.#flushQueued) return;
    this.#flushQueued = true;
    queueMicrotask(() => {
      this.#flushQueued = false;
      this.#flush(false);
    });
  }

  #flush(creditOnly: boolean): void {
    if (this.#failed) return;
    const credit = this.#credit();
    if (credit < this.#creditMax()) this.server.deps.journal.wantRoom();
    const parts: Uint8Array[] = [];
    if (this.#ack === "received" && this.#receivedSeq > this.#sentReceived) {
      this.#sentReceived = this.#receivedSeq;
      parts.push(encodeAckFrame(FrameType.received, this.#receivedSeq, credit));
    }
    const durableType = this.#ack === "received" ? FrameType.hardened : FrameType.ack;
    if (
      this.#durableSeq > this.#sentDurable || (creditOnly && credit !== this.#sentCredit)
    ) {
      this.#sentDurable = this.#durableSeq;
      parts.push(encodeAckFrame(durableType, this.#durableSeq, credit));
    }
    if (parts.length === 0) return;
    this.#sentCredit = credit;
    this.#send(parts.length === 1 ? parts[0] : concatBytes(parts));
  }

  /**
   * Writes `bytes` after every frame sent before it. With none pending the write starts in this
   * call (an ack waits for no promise hop, in which the journal's next group could run first).
   */
  #send(bytes: Uint8Array): void {
    const write = () => writeAll(this.conn, bytes);
    this.#sending++;
    this.#writing = (this.#sending === 1 ? write() : this.#writing.then(write))
      .catch((err) => {
        this.#failed ??= err as Error;
      })
      .finally(() => {
        this.#sending--;
      });
  }
}
