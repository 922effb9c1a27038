/**
 * A deliberately small NBD client for tests, written from the spec independently of the server's
 * encoders: it speaks the handshake step by step, can send any bytes (bad magic, partial
 * requests), keeps several requests in flight and records the order replies arrive in.
 */

export const IHAVEOPT = 0x49484156454f5054n;
export const OPTION_REPLY_MAGIC = 0x3e889045565a9n;
export const REQUEST_MAGIC = 0x25609513;
export const SIMPLE_REPLY_MAGIC = 0x67446698;
export const STRUCTURED_REPLY_MAGIC = 0x668e33ef;

export interface OptionReply {
  option: number;
  type: number;
  data: Uint8Array;
}

export interface Reply {
  cookie: bigint;
  /** 0 on success. */
  error: number;
  /** Read data (simple reply) or the reassembled OFFSET_DATA chunks (structured). */
  data?: Uint8Array;
  /** Structured reply chunks as received: type, flags, payload. */
  chunks?: { type: number; flags: number; payload: Uint8Array }[];
  /** The error message of an error chunk. */
  message?: string;
  structured: boolean;
}

export interface Request {
  type: number;
  flags?: number;
  offset: number;
  length: number;
  data?: Uint8Array;
  cookie?: bigint;
}

/** A reply must arrive within this time, or the request fails (so a broken server fails fast). */
export const replyTimeoutMs = 10_000;

interface Pending {
  type: number;
  offset: number;
  length: number;
  resolve: (r: Reply) => void;
  reject: (e: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

export class RawNbdClient {
  #buf = new Uint8Array(0);
  #eof = false;
  #pending = new Map<bigint, Pending>();
  #nextCookie = 1n;
  #loop: Promise<void> | undefined;
  /** Cookies in the order their (final) replies arrived. */
  readonly replyOrder: bigint[] = [];
  /** Set once transmission replies are structured. */
  structured = false;

  private constructor(readonly conn: Deno.Conn) {}

  static async connect(target: { port: number } | { path: string }): Promise<RawNbdClient> {
    const conn = "port" in target
      ? await Deno.connect({ hostname: "127.0.0.1", port: target.port })
      : await Deno.connect({ transport: "unix", path: target.path });
    return new RawNbdClient(conn);
  }

  // ---- bytes

  async send(bytes: Uint8Array): Promise<void> {
    let done = 0;
    while (done < bytes.length) done += await this.conn.write(bytes.subarray(done));
  }

  /** Reads exactly n bytes; throws when the server closed first. */
  async readBytes(n: number): Promise<Uint8Array> {
    while (this.#buf.length < n) {
      const chunk = new Uint8Array(Math.max(65536, n - this.#buf.length));
      const got = await this.conn.read(chunk).catch(() => null);
      if (got === null) {
        this.#eof = true;
        throw new Error(`Server closed the connection (wanted ${n} bytes)`);
      }
      const joined = new Uint8Array(this.#buf.length + got);
      joined.set(this.#buf);
      joined.set(chunk.subarray(0, got), this.#buf.length);
      this.#buf = joined;
    }
    const out = this.#buf.slice(0, n);
    this.#buf = this.#buf.slice(n);
    return out;
  }

  /** True when the server closes the connection within `ms` (no further bytes expected). */
  async closedWithin(ms: number): Promise<boolean> {
    if (this.#eof) return true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((r) => timer = setTimeout(() => r("timeout"), ms));
    const chunk = new Uint8Array(65536);
    const read = this.conn.read(chunk).then((n) => n === null ? "eof" : "data", () => "eof");
    const result = await Promise.race([read, timeout]);
    clearTimeout(timer);
    if (result === "eof") this.#eof = true;
    return result === "eof";
  }

  close(): void {
    try {
      this.conn.close();
    } catch {
      // already closed
    }
  }

  // ---- handshake

  /** Reads the 18-byte greeting; returns the handshake flags. */
  async readGreeting(): Promise<number> {
    const b = await this.readBytes(18);
    const v = dv(b);
    if (v.getBigUint64(0) !== 0x4e42444d41474943n) throw new Error("No NBDMAGIC");
    if (v.getBigUint64(8) !== IHAVEOPT) throw new Error("No IHAVEOPT");
    return v.getUint16(16);
  }

  async sendClientFlags(flags: number): Promise<void> {
    const b = new Uint8Array(4);
    dv(b).setUint32(0, flags);
    await this.send(b);
  }

  async sendOption(option: number, data: Uint8Array = new Uint8Array(0)): Promise<void> {
    const b = new Uint8Array(16 + data.length);
    const v = dv(b);
    v.setBigUint64(0, IHAVEOPT);
    v.setUint32(8, option);
    v.setUint32(12, data.length);
    b.set(data, 16);
    await this.send(b);
  }

  async readOptionReply(): Promise<OptionReply> {
    const h = dv(await this.readBytes(20));
    if (h.getBigUint64(0) !== OPTION_REPLY_MAGIC) throw new Error("Bad option reply magic");
    const length = h.getUint32(16);
    return { option: h.getUint32(8), type: h.getUint32(12), data: await this.readBytes(length) };
  }

  /** Reads option replies up to and including the first that is not NBD_REP_INFO/SERVER. */
  async readOptionReplies(): Promise<OptionReply[]> {
    const out: OptionReply[] = [];
    for (;;) {
      const r = await this.readOptionReply();
      out.push(r);
      if (r.type !== 2 && r.type !== 3) return out;
    }
  }

  /** Greeting and client flags (FIXED_NEWSTYLE | NO_ZEROES by default). */
  async start(clientFlags = 3): Promise<void> {
    await this.readGreeting();
    await this.sendClientFlags(clientFlags);
  }

  /** NBD_OPT_GO; returns size and transmission flags, throws on an error reply. */
  async go(name: string, opts: { structured?: boolean; infos?: number[] } = {}) {
    if (opts.structured) {
      await this.sendOption(8);
      const r = await this.readOptionReply();
      if (r.type !== 1) throw new Error(`Structured reply refused: ${r.type}`);
      this.structured = true;
    }
    await this.sendOption(7, infoRequest(name, opts.infos ?? [3]));
    const replies = await this.readOptionReplies();
    const last = replies.at(-1)!;
    if (last.type !== 1) {
      throw new Error(`NBD_OPT_GO failed: 0x${last.type.toString(16)} ${text(last.data)}`);
    }
    const exp = replies.find((r) => r.type === 3 && dv(r.data).getUint16(0) === 0)!;
    return {
      size: Number(dv(exp.data).getBigUint64(2)),
      flags: dv(exp.data).getUint16(10),
      replies,
    };
  }

  // ---- transmission

  /** Encodes a request header (and payload) without sending it. */
  static encodeRequest(r: Request & { cookie: bigint }, magic = REQUEST_MAGIC): Uint8Array {
    const payload = r.data ?? new Uint8Array(0);
    const b = new Uint8Array(28 + payload.length);
    const v = dv(b);
    v.setUint32(0, magic);
    v.setUint16(4, r.flags ?? 0);
    v.setUint16(6, r.type);
    v.setBigUint64(8, r.cookie);
    v.setBigUint64(16, BigInt(r.offset));
    v.setUint32(24, r.length);
    b.set(payload, 28);
    return b;
  }

  /** Sends a request and returns its reply once it arrives (replies are read in the background). */
  request(r: Request): { cookie: bigint; reply: Promise<Reply> } {
    const cookie = r.cookie ?? this.#nextCookie++;
    const reply = new Promise<Reply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(cookie);
        reject(new Error(`No reply to cookie ${cookie} within ${replyTimeoutMs} ms`));
      }, replyTimeoutMs);
      this.#pending.set(cookie, {
        type: r.type,
        offset: r.offset,
        length: r.length,
        resolve,
        reject,
        timer,
      });
    });
    reply.catch(() => {}); // a test that failed elsewhere may leave this unawaited
    this.#loop ??= this.#readReplies();
    this.send(RawNbdClient.encodeRequest({ ...r, cookie })).catch(() => {});
    return { cookie, reply };
  }

  /** Sends a request whose reply will never come (NBD_CMD_DISC). */
  async sendOnly(r: Request): Promise<void> {
    this.#loop ??= this.#readReplies();
    await this.send(RawNbdClient.encodeRequest({ ...r, cookie: r.cookie ?? this.#nextCookie++ }));
  }

  read(offset: number, length: number, flags = 0): Promise<Reply> {
    return this.request({ type: 0, offset, length, flags }).reply;
  }
  write(offset: number, data: Uint8Array, flags = 0): Promise<Reply> {
    return this.request({ type: 1, offset, length: data.length, data, flags }).reply;
  }

  /** Resolves when the reply loop ended (the server closed the connection). */
  async ended(): Promise<void> {
    await (this.#loop ??= this.#readReplies());
  }

  get pendingCount(): number {
    return this.#pending.size;
  }

  async #readReplies(): Promise<void> {
    try {
      for (;;) {
        const magic = dv(await this.readBytes(4)).getUint32(0);
        if (magic === SIMPLE_REPLY_MAGIC) {
          const h = dv(await this.readBytes(12));
          const error = h.getUint32(0);
          const cookie = h.getBigUint64(4);
          const p = this.#take(cookie);
          const data = p.type === 0 && error === 0 ? await this.readBytes(p.length) : undefined;
          this.replyOrder.push(cookie);
          p.resolve({ cookie, error, data, structured: false });
        } else if (magic === STRUCTURED_REPLY_MAGIC) {
          await this.#readStructured();
        } else {
          throw new Error(`Bad reply magic 0x${magic.toString(16)}`);
        }
      }
    } catch {
      this.#eof = true;
    }
    for (const [cookie, p] of this.#pending) {
      clearTimeout(p.timer);
      p.reject(new Error(`Connection closed before the reply to cookie ${cookie}`));
    }
    this.#pending.clear();
  }

  #partial = new Map<bigint, NonNullable<Reply["chunks"]>>();

  async #readStructured(): Promise<void> {
    const h = dv(await this.readBytes(16));
    const flags = h.getUint16(0);
    const type = h.getUint16(2);
    const cookie = h.getBigUint64(4);
    const payload = await this.readBytes(h.getUint32(12));
    const chunks = this.#partial.get(cookie) ?? [];
    chunks.push({ type, flags, payload });
    this.#partial.set(cookie, chunks);
    if ((flags & 1) === 0) return;
    this.#partial.delete(cookie);
    const p = this.#take(cookie);
    const reply: Reply = { cookie, error: 0, chunks, structured: true };
    for (const c of chunks) {
      const v = dv(c.payload);
      if (c.type & 0x8000) {
        reply.error = v.getUint32(0);
        reply.message = text(c.payload.subarray(6, 6 + v.getUint16(4)));
      } else if (c.type === 1) {
        reply.data ??= new Uint8Array(p.length);
        reply.data.set(c.payload.subarray(8), Number(v.getBigUint64(0)) - p.offset);
      }
    }
    this.replyOrder.push(cookie);
    p.resolve(reply);
  }

  #take(cookie: bigint) {
    const p = this.#pending.get(cookie);
    if (!p) throw new Error(`Reply for unknown cookie ${cookie}`);
    this.#pending.delete(cookie);
    clearTimeout(p.timer);
    return p;
  }
}

/** NBD_OPT_INFO / NBD_OPT_GO data. */
export function infoRequest(name: string, infos: number[] = []): Uint8Array {
  const n = new TextEncoder().encode(name);
  const b = new Uint8Array(4 + n.length + 2 + 2 * infos.length);
  const v = dv(b);
  v.setUint32(0, n.length);
  b.set(n, 4);
  v.setUint16(4 + n.length, infos.length);
  infos.forEach((t, i) => v.setUint16(4 + n.length + 2 + 2 * i, t));
  return b;
}

export const dv = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);
export const text = (b: Uint8Array) => new TextDecoder().decode(b);
