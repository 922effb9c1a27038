/**
 * The host's end of the link (src/link_protocol.ts): ONE persistent connection per host agent to
 * the backup, multiplexing all its volumes.
 *
 * Interface (what the fork layer and the agent plug into):
 *
 *   const link = new LinkClient({ address: "tcp://127.0.0.1:8704" | "/run/backup.sock",
 *                                 hostId, ack: "durable" | "received", volumes: [{name, sizeBytes,
 *                                 epoch}], regionBytes });
 *   await link.open();                       // HELLO → WELCOME; throws when refused
 *   await link.submit(volume, mirrorRecord); // resolves per ack mode, rejects on any link failure
 *   link.failure                             // set once the link failed; every later submit rejects
 *   link.unhardened(volume)?.unionRegions()  // `received` mode: regions to mark at the tracker
 *   await link.reconnect(volumesWithNewEpochs); // after a failure, by the owner (probe)
 *   link.writerFor(volume)                   // { submit(rec) } in place of a BackupBatcher
 *   await link.close();
 *
 * `submit` resolves in `durable` mode when an ACK covers the record's frame (the backup's
 * journal sync covers it), in `received` mode when RECEIVED covers it; then the record's regions
 * are added to the volume's unhardened record (host/link/unhardened.ts) until a HARDENED notice
 * lets them go. On any failure — connection closed, ERROR frame, no ack progress within
 * `ackTimeoutMs` — every submit not yet resolved rejects (the fork layer falls back to the
 * tracker), and the client stays failed until `reconnect`. The owner must mark the unhardened
 * union at the tracker before acknowledging any later write, then `clearUnhardened()`.
 *
 * Coalescing without timers: one writer loop takes everything queued, encodes one RECORDS frame
 * (at most `frameBytesMax`, within the credit) and awaits the socket write; records submitted
 * meanwhile go in the next frame. The loop starts one microtask after the first submit, so the
 * rest of the burst submitted in the same step joins that frame (4.4 → 9.1 records a frame at
 * depth 32; a `setTimeout(0)` flush cut throughput by 60%). With `linkFramesAheadMax` frames
 * unacknowledged the loop holds what is queued until the next ack (Nagle's rule, two frames
 * deep), unless a full frame is queued. Submitters wait when `inflightBytesMax` bytes are queued.
 *
 * A frame is written in pieces when it holds a large record: its header and small records are
 * encoded into the frame buffer, and the payload of each record of at least
 * `linkSendDirectBytesMin` is written from its own buffer between them (the wire bytes are the
 * same). At 1 MiB writes that copy was 5–7% of the link's host CPU (bench/link_bench.ts).
 */
import { encodedRecordBytes, encodeRecord, encodeRecordHead } from "../../src/journal_record.ts";
import {
  ackCredit,
  type AckMode,
  encodeJsonFrame,
  type Frame,
  frameJson,
  frameReadDirectBytesMin,
  FrameReader,
  FrameType,
  linkCoalesceBytesMax,
  type LinkError,
  linkFrameHeaderBytes,
  type LinkHello,
  linkInflightBytesMax,
  type LinkVolume,
  type LinkWelcome,
  sealFramePieces,
  writeAll,
} from "../../src/link_protocol.ts";
import { regionBytesDefault } from "../../src/extent.ts";
import type { MirrorRecord } from "../fork/backup_batcher.ts";
import { UnhardenedRegions } from "./unhardened.ts";

/**
 * Frames sent ahead of the acks before the writer holds what is queued for the next ack (unless
 * a full frame is queued): two keep the backup busy (one in its journal's fdatasync, one waiting
 * for the next group) while writes that arrive one at a time (HTTP requests, each in its own
 * event-loop step) gather into one frame instead of a frame each.
 */
export const linkFramesAheadMax = 2;

/**
 * The backup answered with an ERROR frame (refusing HELLO, or failing the connection). `status`
 * is its HTTP-like status: 503 says the backup is up but cannot take writes (journal full, a
 * journal write failed), which the agent reports as a degraded backup, not an offline one.
 */
export class LinkRefusedError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
    this.name = "LinkRefusedError";
  }
}

/**
 * A record payload (or a run of records already encoded) at least this large is written to the
 * socket from its own buffer, a frame piece of its own, instead of copied into the frame buffer.
 * It costs up to two more socket writes (~2.6 µs each on loopback, measured) against a copy of
 * 6–40 µs at 256 KiB (1.3–6 µs at 64 KiB, where it would not pay); small records still share one
 * buffer and one write. The same bound as the backup's direct read (src/link_protocol.ts).
 */
export const linkSendDirectBytesMin = frameReadDirectBytesMin;

/** The bytes of `p` sent from its own buffer (empty: all of it is copied into the frame). */
function directBytes(p: Pending): Uint8Array {
  const bytes = p.encoded ?? (p.rec!.kind === "write" ? p.rec!.data : undefined);
  return bytes && bytes.length >= linkSendDirectBytesMin ? bytes : noBytes;
}

const noBytes = new Uint8Array(0);

/** Default wait for ack progress before the link is declared failed. */
export const linkAckTimeoutMsDefault = 5000;

export interface LinkClientOptions {
  /** "tcp://HOST:PORT", "unix:PATH" or an absolute socket path. */
  address: string;
  hostId: string;
  ack?: AckMode;
  volumes: LinkVolume[];
  /** Tracking granularity of the unhardened record (`received` mode). */
  regionBytes?: number;
  ackTimeoutMs?: number;
  /** Most record bytes coalesced into one RECORDS frame (a larger record goes alone). */
  frameBytesMax?: number;
  /** Most bytes queued and unacknowledged before `submit` waits. */
  inflightBytesMax?: number;
  /** The shared token, sent in HELLO; a backup with a token refuses a HELLO without it. */
  token?: string;
  /**
   * Told, for each `submit` acknowledged, the seconds from its submit to the acknowledgement
   * (queueing behind the in-flight bound included). For `/metrics` (host/port_timing.ts).
   */
  observeAck?: (seconds: number) => void;
}

interface Pending {
  volume: string;
  /** One record to encode, or records already encoded back to back (resync copies). */
  rec?: MirrorRecord;
  encoded?: Uint8Array;
  bytes: number;
  /** Resolve only once durable, whatever the ack mode (resync copies clear tracker marks). */
  waitDurable: boolean;
  /** When it was submitted (performance.now()); 0 when nobody observes acks. */
  at: number;
  done: boolean;
  resolve: () => void;
  reject: (err: Error) => void;
}

interface SentFrame {
  seq: number;
  bytes: number;
  items: Pending[];
  received: boolean;
}

/** The link of one host agent to its backup. */
export class LinkClient {
  readonly ack: AckMode;
  #volumes: Map<string, LinkVolume>;
  readonly #unhardened = new Map<string, UnhardenedRegions>();
  #conn: Deno.Conn | undefined;
  #failure: Error | undefined = new Error("The link is not open");
  #queue: Pending[] = [];
  #queuedBytes = 0;
  #sent: SentFrame[] = [];
  #sentBytes = 0;
  #credit = 0;
  #seq = 0;
  /** The last frame acknowledged in the ack mode's sense (RECEIVED in `received` mode). */
  #ackedSeq = 0;
  #writing = false;
  /** `submit` writes waiting for room under `inflightBytesMax` (the slow path). */
  readonly #waiting = new Set<{ volume: string; length: number; at: number }>();
  /** The frame buffer #encode reuses. */
  #frameBuf = new Uint8Array(0);
  #roomWaiters: (() => void)[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #progressAt = 0;
  #readLoop: Promise<void> = Promise.resolve();
  readonly #frameBytesMax: number;
  readonly #inflightBytesMax: number;
  readonly #ackTimeoutMs: number;
  readonly #failureListeners: ((err: Error) => void)[] = [];
  /** RECORDS frames sent (for the bench and tests). */
  framesSent = 0;
  /** Records sent. */
  recordsSent = 0;
  /** Records (or encoded runs) whose payload was written from its own buffer, uncopied. */
  recordsSentDirect = 0;

  constructor(private readonly opts: LinkClientOptions) {
    this.ack = opts.ack ?? "durable";
    this.#volumes = new Map(opts.volumes.map((v) => [v.name, v]));
    this.#frameBytesMax = opts.frameBytesMax ?? linkCoalesceBytesMax;
    this.#inflightBytesMax = opts.inflightBytesMax ?? linkInflightBytesMax;
    this.#ackTimeoutMs = opts.ackTimeoutMs ?? linkAckTimeoutMsDefault;
    if (this.ack === "received") {
      for (const v of opts.volumes) {
        this.#unhardened.set(v.name, new UnhardenedRegions(opts.regionBytes ?? regionBytesDefault));
      }
    }
  }

  /** Why the link failed; undefined while it is up. */
  get failure(): Error | undefined {
    return this.#failure;
  }
  /** The credit last granted by the backup. */
  get credit(): number {
    return this.#credit;
  }
  /** The unhardened record of `volume` (`received` mode only). */
  unhardened(volume: string): UnhardenedRegions | undefined {
    return this.#unhardened.get(volume);
  }
  /** Calls `listener` whenever an open link fails (closed, ERROR, no ack progress). */
  onFailure(listener: (err: Error) => void): void {
    this.#failureListeners.push(listener);
  }

  /** Forgets every unhardened region: call once their union is marked at the tracker. */
  clearUnhardened(): void {
    for (const u of this.#unhardened.values()) u.clear();
  }

  /** Connects, sends HELLO and waits for WELCOME; throws when the backup refuses. */
  async open(): Promise<LinkWelcome> {
    const conn = await connectLink(this.opts.address);
    const reader = new FrameReader(conn);
    try {
      await writeAll(
        conn,
        encodeJsonFrame(
          FrameType.hello,
          {
            hostId: this.opts.hostId,
            ack: this.ack,
            volumes: [...this.#volumes.values()],
            ...(this.opts.token === undefined ? {} : { token: this.opts.token }),
          } satisfies LinkHello,
        ),
      );
      const frame = await reader.next();
      if (frame === null) throw new Error("The backup closed the link before WELCOME");
      if (frame.type === FrameType.error) {
        const e = frameJson<LinkError>(frame);
        throw new LinkRefusedError(
          e.status,
          `The backup refused the link (${e.status}): ${e.message}`,
        );
      }
      if (frame.type !== FrameType.welcome) throw new Error(`Expected WELCOME, got ${frame.type}`);
      const welcome = frameJson<LinkWelcome>(frame);
      this.#conn = conn;
      this.#credit = welcome.credit;
      this.#seq = 0;
      this.#ackedSeq = 0;
      this.#failure = undefined;
      this.#readLoop = this.#read(conn, reader);
      return welcome;
    } catch (err) {
      conn.close();
      throw err;
    }
  }

  /** Opens a new connection with the volumes' new epochs, after a failure. */
  async reconnect(volumes: LinkVolume[]): Promise<LinkWelcome> {
    if (!this.#failure) this.#fail(new Error("Reconnecting"));
    await this.#readLoop;
    this.#volumes = new Map(volumes.map((v) => [v.name, v]));
    for (const v of volumes) {
      if (this.ack === "received" && !this.#unhardened.has(v.name)) {
        this.#unhardened.set(
          v.name,
          new UnhardenedRegions(this.opts.regionBytes ?? regionBytesDefault),
        );
      }
    }
    return await this.open();
  }

  /**
   * Sends one record; resolves per the ack mode; rejects when the link fails first. Not `async`:
   * this is every mirrored write's path, and its one promise is the one the ack settles. A large
   * record's data is written to the socket from where it is (`linkSendDirectBytesMin`): it must
   * stay unchanged until the promise settles (a failure closes the socket before it rejects).
   */
  submit(volume: string, rec: MirrorRecord): Promise<void> {
    if (this.#failure) return Promise.reject(this.#failure);
    if (!this.#volumes.has(volume)) {
      return Promise.reject(new RangeError(`Volume "${volume}" was not announced on the link`));
    }
    const bytes = encodedRecordBytes(volume, rec.kind, rec.length);
    // Stamped before any wait for room: the ack time includes queueing behind the bound.
    const at = this.opts.observeAck ? performance.now() : 0;
    return this.#enqueue(volume, rec, undefined, bytes, false, at);
  }

  /**
   * Sends records already encoded back to back (src/journal_record.ts) for `volume`; resolves
   * once the backup's journal sync covers them, in either ack mode. Resync sends its copies so.
   */
  async submitEncoded(volume: string, body: Uint8Array): Promise<void> {
    if (this.#failure) throw this.#failure;
    if (!this.#volumes.has(volume)) {
      throw new RangeError(`Volume "${volume}" was not announced on the link`);
    }
    return await this.#enqueue(volume, undefined, body, body.length, true, 0);
  }

  /** Queues one item; waits first while `inflightBytesMax` bytes are queued. */
  #enqueue(
    volume: string,
    rec: MirrorRecord | undefined,
    encoded: Uint8Array | undefined,
    bytes: number,
    waitDurable: boolean,
    at: number,
  ): Promise<void> {
    if (this.#queuedBytes > 0 && this.#queuedBytes + bytes > this.#inflightBytesMax) {
      return this.#enqueueWhenRoom(volume, rec, encoded, bytes, waitDurable, at);
    }
    // From idle, the wait for ack progress starts now (the timer may still run from before).
    if (this.#sent.length === 0 && this.#queue.length === 0) {
      this.#progressAt = performance.now();
    }
    const p = { volume, rec, encoded, bytes, waitDurable, at, done: false } as Pending;
    const done = new Promise<void>((resolve, reject) => {
      p.resolve = resolve;
      p.reject = reject;
    });
    this.#queue.push(p);
    this.#queuedBytes += bytes;
    this.#armTimer();
    this.#startWriting();
    return done;
  }

  async #enqueueWhenRoom(
    volume: string,
    rec: MirrorRecord | undefined,
    encoded: Uint8Array | undefined,
    bytes: number,
    waitDurable: boolean,
    at: number,
  ): Promise<void> {
    // Counted as unacknowledged while it waits, like a queued write (`unacked`).
    const waiting = rec && { volume, length: rec.length, at };
    if (waiting) this.#waiting.add(waiting);
    try {
      while (this.#queuedBytes > 0 && this.#queuedBytes + bytes > this.#inflightBytesMax) {
        await new Promise<void>((resolve) => this.#roomWaiters.push(resolve));
        if (this.#failure) throw this.#failure;
      }
    } finally {
      if (waiting) this.#waiting.delete(waiting);
    }
    return await this.#enqueue(volume, rec, encoded, bytes, waitDurable, at);
  }

  /** Settles `p` as acknowledged; observes its ack time when asked to. */
  #resolve(p: Pending, now: number): void {
    p.done = true;
    if (p.at !== 0) this.opts.observeAck!((now - p.at) / 1000);
    p.resolve();
  }

  /**
   * Bytes of `submit` writes of `volume` not acknowledged yet (waiting for room, queued or
   * sent), and the performance.now() of the oldest (undefined when none). Scans what is in
   * flight: for metrics scrapes, not the write path. Submit times are kept only with
   * `observeAck` (0 otherwise).
   */
  unacked(volume: string): { bytes: number; oldestAt: number | undefined } {
    let bytes = 0;
    let oldestAt: number | undefined;
    const count = (p: Pending) => {
      if (p.done || !p.rec || p.volume !== volume) return;
      bytes += p.rec.length;
      if (oldestAt === undefined || p.at < oldestAt) oldestAt = p.at;
    };
    for (const f of this.#sent) f.items.forEach(count);
    this.#queue.forEach(count);
    for (const w of this.#waiting) {
      if (w.volume !== volume) continue;
      bytes += w.length;
      if (oldestAt === undefined || w.at < oldestAt) oldestAt = w.at;
    }
    return { bytes, oldestAt };
  }

  /** A per-volume adapter shaped like `BackupBatcher.submit`. */
  writerFor(volume: string): { submit(rec: MirrorRecord): Promise<void> } {
    return { submit: (rec) => this.submit(volume, rec) };
  }

  /** Closes the link; unresolved submits reject. */
  async close(): Promise<void> {
    this.#fail(new Error("The link was closed"));
    await this.#readLoop;
  }

  /**
   * Starts the writer loop one microtask from now, unless it runs or is about to: the writes of
   * one NBD burst reach `submit` at the same microtask depth, one after another, so the first of
   * them no longer leaves alone in a frame of its own.
   */
  #startWriting(): void {
    if (this.#writing) return;
    this.#writing = true;
    queueMicrotask(() => void this.#writeLoop());
  }

  /** Sends frames while records are queued and credit allows. */
  async #writeLoop(): Promise<void> {
    this.#writing = true;
    try {
      while (this.#queue.length > 0 && !this.#failure) {
        // Enough frames ahead of the acks and less than a full frame queued: the next ack
        // restarts the loop, and what queued meanwhile leaves in one frame.
        if (
          this.#seq - this.#ackedSeq >= linkFramesAheadMax &&
          this.#queuedBytes < this.#frameBytesMax
        ) return;
        const room = this.#credit - this.#sentBytes;
        const items = this.#take(room);
        if (items.length === 0) return; // Out of credit: an ack restarts the loop.
        const pieces = this.#encode(items);
        const conn = this.#conn!;
        for (const piece of pieces) if (piece.length > 0) await writeAll(conn, piece);
      }
    } catch (err) {
      this.#fail(new Error(`Link write failed: ${(err as Error).message}`));
    } finally {
      this.#writing = false;
    }
  }

  /** Takes queued records for one frame, within `room` bytes of credit. */
  #take(room: number): Pending[] {
    const limit = Math.min(room, this.#frameBytesMax);
    let bytes = 0;
    let n = 0;
    while (n < this.#queue.length) {
      const b = this.#queue[n].bytes;
      // A record larger than a frame (or the credit) goes alone when the whole window is free.
      const alone = n === 0 && this.#sentBytes === 0 &&
        this.#credit >= Math.min(b, this.#inflightBytesMax);
      if (bytes + b > limit && !alone) break;
      bytes += b;
      n++;
      if (bytes >= limit) break;
    }
    const items = this.#queue.splice(0, n);
    this.#queuedBytes -= bytes;
    for (const wake of this.#roomWaiters.splice(0)) wake();
    return items;
  }

  /**
   * Encodes one RECORDS frame as the pieces to write back to back: the reused frame buffer (valid
   * until the next call: the writer loop awaits each frame's socket writes before it encodes the
   * next) holds the header and every record whole, except that the payload of a record of at
   * least `linkSendDirectBytesMin` is a piece of its own, sent from its own buffer uncopied. A
   * frame larger than a coalesced frame gets a buffer of its own. A fresh zeroed buffer per frame
   * cost the allocation and the zeroing of every byte again.
   */
  #encode(items: Pending[]): Uint8Array[] {
    let payloadBytes = 0;
    let copiedBytes = 0;
    for (const p of items) {
      payloadBytes += p.bytes;
      copiedBytes += p.bytes - directBytes(p).length;
    }
    const frameBytes = linkFrameHeaderBytes + copiedBytes;
    if (frameBytes > this.#frameBuf.length && copiedBytes <= this.#frameBytesMax) {
      const size = Math.min(
        2 ** Math.ceil(Math.log2(frameBytes)),
        linkFrameHeaderBytes + this.#frameBytesMax,
      );
      this.#frameBuf = new Uint8Array(size);
    }
    // Every byte of the frame is written below: header, then each record (or its head) whole.
    const buf = frameBytes <= this.#frameBuf.length
      ? this.#frameBuf.subarray(0, frameBytes)
      : new Uint8Array(frameBytes);
    const pieces: Uint8Array[] = [];
    let from = 0;
    let pos = linkFrameHeaderBytes;
    for (const p of items) {
      const direct = directBytes(p);
      if (direct.length === 0) {
        if (p.encoded) buf.set(p.encoded, pos);
        else encodeRecord({ ...p.rec!, volume: p.volume }, buf, pos);
        pos += p.bytes;
        continue;
      }
      if (p.rec) pos += encodeRecordHead({ ...p.rec, volume: p.volume }, buf, pos).length;
      pieces.push(buf.subarray(from, pos), direct);
      from = pos;
      this.recordsSentDirect++;
    }
    if (pos > from || pieces.length === 0) pieces.push(buf.subarray(from, pos));
    const seq = ++this.#seq;
    this.#sent.push({ seq, bytes: payloadBytes, items, received: false });
    this.#sentBytes += payloadBytes;
    this.framesSent++;
    this.recordsSent += items.length;
    sealFramePieces(pieces, FrameType.records, seq);
    return pieces;
  }

  async #read(conn: Deno.Conn, reader: FrameReader): Promise<void> {
    try {
      for (;;) {
        const frame = await reader.next();
        if (frame === null) throw new Error("The backup closed the link");
        this.#onFrame(frame);
      }
    } catch (err) {
      if (this.#conn === conn) this.#fail(err as Error);
    }
  }

  #onFrame(frame: Frame): void {
    // Ack progress, and the one clock reading the acks it settles are timed with.
    this.#progressAt = performance.now();
    switch (frame.type) {
      case FrameType.ack:
      case FrameType.hardened:
        this.#credit = ackCredit(frame);
        this.#durable(frame.sequence);
        break;
      case FrameType.received:
        this.#credit = ackCredit(frame);
        this.#received(frame.sequence);
        break;
      case FrameType.error: {
        const e = frameJson<LinkError>(frame);
        throw new LinkRefusedError(
          e.status,
          `The backup failed the link (${e.status}): ${e.message}`,
        );
      }
      default:
        throw new Error(`Unexpected frame type ${frame.type} from the backup`);
    }
    if (this.#queue.length > 0) this.#startWriting();
  }

  /** Frames up to `seq` are received: resolve their submits, note their regions unhardened. */
  #received(seq: number): void {
    for (const f of this.#sent) {
      if (f.seq > seq) break;
      if (f.received) continue;
      f.received = true;
      this.#ackedSeq = Math.max(this.#ackedSeq, f.seq);
      for (const p of f.items) {
        if (p.waitDurable || !p.rec) continue;
        this.#unhardened.get(p.volume)?.received(p.rec.offset, p.rec.length);
        this.#resolve(p, this.#progressAt);
      }
    }
  }

  /** Frames up to `seq` are durable: resolve what is left of them and drop them. */
  #durable(seq: number): void {
    let n = 0;
    this.#ackedSeq = Math.max(this.#ackedSeq, seq);
    for (const f of this.#sent) {
      if (f.seq > seq) break;
      for (const p of f.items) if (!p.done) this.#resolve(p, this.#progressAt);
      this.#sentBytes -= f.bytes;
      n++;
    }
    this.#sent.splice(0, n);
    if (this.ack === "received") {
      for (const u of this.#unhardened.values()) u.notice(seq, this.#seq);
    }
    // Idle now: the ack timer is left to lapse on its own (it stops when it finds nothing
    // unacknowledged) rather than cleared and set again around every burst.
  }

  /** Watches for ack progress while anything is unacknowledged. */
  #armTimer(): void {
    if (this.#timer !== undefined) return;
    const check = () => {
      this.#timer = undefined;
      if (this.#failure || (this.#sent.length === 0 && this.#queue.length === 0)) return;
      const idle = performance.now() - this.#progressAt;
      if (idle >= this.#ackTimeoutMs) {
        this.#fail(new Error(`No ack from the backup for ${Math.round(idle)} ms`));
        return;
      }
      this.#timer = setTimeout(check, this.#ackTimeoutMs - idle);
    };
    this.#timer = setTimeout(check, this.#ackTimeoutMs);
  }

  #disarmTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Fails the link: every unresolved submit rejects; the connection closes. */
  #fail(err: Error): void {
    if (this.#failure) return;
    this.#failure = err;
    this.#disarmTimer();
    const conn = this.#conn;
    this.#conn = undefined;
    try {
      conn?.close();
    } catch { /* already closed */ }
    for (const f of this.#sent.splice(0)) {
      for (const p of f.items) {
        if (p.done) continue;
        p.done = true;
        p.reject(err);
      }
    }
    for (const p of this.#queue.splice(0)) {
      p.done = true;
      p.reject(err);
    }
    this.#sentBytes = 0;
    this.#queuedBytes = 0;
    for (const wake of this.#roomWaiters.splice(0)) wake();
    if (conn) { for (const listener of this.#failureListeners) listener(err); }
  }
}

/** Opens the stream to `address`: TCP with no-delay, or a unix socket. */
export async function connectLink(address: string): Promise<Deno.Conn> {
  if (address.startsWith("tcp://")) {
    const url = new URL(address.replace(/^tcp:/, "http:"));
    const conn = await Deno.connect({ hostname: url.hostname, port: Number(url.port) });
    conn.setNoDelay(true);
    return conn;
  }
  const path = address.startsWith("unix:") ? address.slice(5) : address;
  if (!path.startsWith("/")) {
    throw new RangeError(`Link address "${address}" must be tcp://HOST:PORT or a socket path`);
  }
  return await Deno.connect({ transport: "unix", path });
}
