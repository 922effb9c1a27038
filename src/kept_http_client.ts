/**
 * A lean HTTP/1.1 client for one hot call: a small JSON POST answered with a small JSON body (the
 * host's tracking commands, which a write waits for while the backup is away). It keeps its TCP
 * connections open between calls and writes and parses the request and answer itself.
 *
 * Why not `fetch`: on loopback a `fetch` round trip to a `Deno.serve` peer costs ~150 µs more
 * than the same request written on a kept TCP connection (measured: ~230 µs against ~80 µs, and
 * the host's CPU with it), and a tracking command in tracking mode is on the write path of every
 * write to a region not yet marked.
 *
 * Same contract as `callJson` (src/http_client.ts): the same request (method, path, JSON body,
 * bearer token), a 2xx answer's JSON, a `ServiceCallError` with the status and the error body's
 * message for any other status, status 0 when no answer came (refused, reset, timed out after
 * `timeoutMs`; also a 2xx without a JSON body, where `callJson` throws the parse error). An
 * `https:` base URL, or one with a path, goes through `callJson` itself (no TLS here).
 *
 * A kept connection may have been closed by the peer while idle (a restart, an idle timeout):
 * when one that served a call before gives no byte of answer, the call is sent once more on a new
 * connection. Only calls that are safe to apply twice may use this client (tracking commands
 * are: tracker/client.ts says why).
 */
import {
  callJson,
  type HttpClientOptions,
  requestTimeoutMsDefault,
  ServiceCallError,
  statusError,
} from "./http_client.ts";

/** Idle connections kept per peer; calls beyond them open (and then close) more. */
export const idleConnectionsMax = 4;
/** Largest answer head accepted (status line and headers). */
export const answerHeadBytesMax = 64 * 1024;
/** Largest answer body accepted (a 400's zod issues of a 4096-extent command fit easily). */
export const answerBodyBytesMax = 4 * 1024 * 1024;
/** Bytes read from the socket at once. */
const readChunkBytes = 16 * 1024;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The connection ended before a byte of the answer came (a kept connection the peer closed). */
class NoAnswer extends Error {}

/** One kept TCP connection and the bytes read past the last answer's end. */
interface Kept {
  conn: Deno.TcpConn;
  /** True once it carried a whole exchange (so a silent end may mean "closed while idle"). */
  reused: boolean;
}

/** A peer's address and its idle connections. */
interface Peer {
  hostname: string;
  port: number;
  /** The Host header. */
  host: string;
  idle: Kept[];
}

/** An answer as read. */
interface Answer {
  status: number;
  body: Uint8Array;
  /** False when the peer said it closes, or the body ran to the end of the connection. */
  keep: boolean;
}

/** Kept-connection POSTs of JSON; see the file comment. `close` drops the idle connections. */
export class KeptHttpClient {
  readonly #peers = new Map<string, Peer | null>();
  /** Connections opened (for tests and status: a kept connection is opened once). */
  connectionsOpened = 0;

  constructor(private readonly opts: HttpClientOptions = {}) {}

  /** POSTs `json` to `baseUrl + path`; the 2xx answer's JSON, else a ServiceCallError. */
  async postJson<T>(baseUrl: string, path: string, json: unknown): Promise<T> {
    const peer = this.#peer(baseUrl);
    if (!peer) return await callJson<T>(baseUrl, path, { method: "POST", json }, this.opts);
    const what = `POST ${baseUrl}${path}`;
    const request = this.#request(peer, path, json);
    const timeoutMs = this.opts.timeoutMs ?? requestTimeoutMsDefault;
    let current: Kept | undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let expired = false;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        expired = true;
        if (current) closeQuietly(current.conn);
        reject(new ServiceCallError(0, `${what} failed: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
    });
    const exchange = async (): Promise<Answer> => {
      for (;;) {
        const kept = peer.idle.pop() ?? await this.#connect(peer, what);
        if (expired) { // the connect outlasted the call: send nothing late
          closeQuietly(kept.conn);
          throw new ServiceCallError(0, `${what} failed: no answer within ${timeoutMs} ms`);
        }
        current = kept;
        try {
          const answer = await exchangeOn(kept.conn, request);
          if (answer.keep && peer.idle.length < idleConnectionsMax) {
            kept.reused = true;
            peer.idle.push(kept);
          } else kept.conn.close();
          return answer;
        } catch (err) {
          closeQuietly(kept.conn);
          // Closed by the peer while idle: once more on a new connection.
          if (err instanceof NoAnswer && kept.reused && !expired) continue;
          throw new ServiceCallError(0, `${what} failed: ${(err as Error).message}`);
        }
      }
    };
    const work = exchange();
    work.catch(() => {}); // when the timeout won, its failure has no reader
    let answer: Answer;
    try {
      answer = await Promise.race([work, timedOut]);
    } finally {
      clearTimeout(timer);
    }
    let body: unknown;
    try {
      body = answer.body.length ? JSON.parse(decoder.decode(answer.body)) : undefined;
    } catch {
      body = undefined; // not JSON: a 2xx then fails below, another status says enough
    }
    if (answer.status >= 200 && answer.status < 300) {
      if (body === undefined) {
        throw new ServiceCallError(0, `${what} answered ${answer.status} without a JSON body`);
      }
      return body as T;
    }
    throw statusError(what, answer.status, body);
  }

  /** Closes the idle connections (calls in flight close theirs when they end). */
  close(): void {
    for (const peer of this.#peers.values()) {
      for (const kept of peer?.idle.splice(0) ?? []) closeQuietly(kept.conn);
    }
  }

  /** The peer of an `http:` base URL; null for anything else (left to fetch). */
  #peer(baseUrl: string): Peer | null {
    let peer = this.#peers.get(baseUrl);
    if (peer !== undefined) return peer;
    const url = new URL(baseUrl);
    peer = url.protocol !== "http:" || (url.pathname !== "/" && url.pathname !== "") ? null : {
      hostname: url.hostname.replace(/^\[(.*)\]$/, "$1"),
      port: Number(url.port || 80),
      host: url.host,
      idle: [],
    };
    this.#peers.set(baseUrl, peer);
    return peer;
  }

  async #connect(peer: Peer, what: string): Promise<Kept> {
    let conn: Deno.TcpConn;
    try {
      conn = await Deno.connect({ hostname: peer.hostname, port: peer.port });
    } catch (err) {
      throw new ServiceCallError(0, `${what} failed: ${(err as Error).message}`);
    }
    conn.setNoDelay(true);
    this.connectionsOpened++;
    return { conn, reused: false };
  }

  /** The whole request, head and body, as one buffer (one write). */
  #request(peer: Peer, path: string, json: unknown): Uint8Array {
    const body = encoder.encode(JSON.stringify(json));
    const auth = this.opts.token ? `authorization: Bearer ${this.opts.token}\r\n` : "";
    const head = encoder.encode(
      `POST ${path} HTTP/1.1\r\nhost: ${peer.host}\r\ncontent-type: application/json\r\n` +
        `content-length: ${body.length}\r\n${auth}\r\n`,
    );
    const out = new Uint8Array(head.length + body.length);
    out.set(head);
    out.set(body, head.length);
    return out;
  }
}

function closeQuietly(conn: Deno.TcpConn): void {
  try {
    conn.close();
  } catch {
    // closed already (by the timeout, or after an error)
  }
}

/**
 * Writes `request` and reads one answer. A failure before any byte of the answer came (the write
 * refused, the connection reset or ended) is a NoAnswer.
 */
async function exchangeOn(conn: Deno.TcpConn, request: Uint8Array): Promise<Answer> {
  const reader = new AnswerReader(conn);
  try {
    for (let at = 0; at < request.length;) at += await conn.write(request.subarray(at));
    return await reader.read();
  } catch (err) {
    if (reader.bytesRead > 0 || err instanceof NoAnswer) throw err;
    throw new NoAnswer((err as Error).message);
  }
}

/** Reads one HTTP/1.1 answer from a connection (no pipelining: nothing may follow it). */
class AnswerReader {
  #buf = new Uint8Array(readChunkBytes);
  #len = 0;
  #pos = 0;
  #ended = false;

  /** Bytes of the answer read so far. */
  get bytesRead(): number {
    return this.#len;
  }

  constructor(private readonly conn: Deno.TcpConn) {}

  async read(): Promise<Answer> {
    const headEnd = await this.#headEnd();
    const lines = decoder.decode(this.#buf.subarray(0, headEnd)).split("\r\n");
    const status = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0])?.[1];
    if (status === undefined) throw new Error(`Bad status line "${lines[0].slice(0, 80)}"`);
    const headers = new Map<string, string>();
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(":");
      if (colon > 0) {
        headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
      }
    }
    this.#pos = headEnd + 4;
    const code = Number(status);
    let keep = !/\bclose\b/i.test(headers.get("connection") ?? "") &&
      lines[0].startsWith("HTTP/1.1");
    let body: Uint8Array;
    if (code === 204 || code === 304 || code < 200) {
      body = new Uint8Array(0);
    } else if (/\bchunked\b/i.test(headers.get("transfer-encoding") ?? "")) {
      body = await this.#chunked();
    } else if (headers.has("content-length")) {
      const length = Number(headers.get("content-length"));
      if (!Number.isSafeInteger(length) || length < 0 || length > answerBodyBytesMax) {
        throw new Error(`Bad or too large content-length "${headers.get("content-length")}"`);
      }
      body = await this.#take(length);
    } else {
      keep = false; // the body runs to the end of the connection
      while (await this.#fill()) { /* read everything */ }
      body = this.#buf.slice(this.#pos, this.#len);
      this.#pos = this.#len;
    }
    // Bytes past the answer belong to nothing we asked: do not reuse such a connection.
    if (this.#pos !== this.#len) keep = false;
    return { status: code, body, keep };
  }

  /** Index of the "\r\n\r\n" ending the head; throws NoAnswer when the connection ends first. */
  async #headEnd(): Promise<number> {
    let from = 0;
    for (;;) {
      for (let i = Math.max(from, 3); i < this.#len; i++) {
        if (
          this.#buf[i] === 10 && this.#buf[i - 1] === 13 && this.#buf[i - 2] === 10 &&
          this.#buf[i - 3] === 13
        ) return i - 3;
      }
      from = this.#len;
      if (this.#len > answerHeadBytesMax) throw new Error("Answer head too large");
      if (!await this.#fill()) {
        if (this.#len === 0) throw new NoAnswer("Connection closed before an answer");
        throw new Error("Connection closed in the middle of an answer");
      }
    }
  }

  /** The next `n` bytes (read as needed). */
  async #take(n: number): Promise<Uint8Array> {
    while (this.#len - this.#pos < n) {
      if (!await this.#fill()) throw new Error("Connection closed in the middle of an answer");
    }
    const out = this.#buf.slice(this.#pos, this.#pos + n);
    this.#pos += n;
    return out;
  }

  /** The next line without its CRLF. */
  async #line(): Promise<string> {
    for (;;) {
      const i = this.#buf.subarray(this.#pos, this.#len).indexOf(10);
      if (i >= 1 && this.#buf[this.#pos + i - 1] === 13) {
        const line = decoder.decode(this.#buf.subarray(this.#pos, this.#pos + i - 1));
        this.#pos += i + 1;
        return line;
      }
      if (this.#len - this.#pos > answerHeadBytesMax) throw new Error("Chunk line too long");
      if (!await this.#fill()) throw new Error("Connection closed in the middle of an answer");
    }
  }

  /** A chunked body, decoded (trailers skipped). */
  async #chunked(): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    let total = 0;
    for (;;) {
      const size = parseInt((await this.#line()).split(";")[0].trim(), 16);
      if (!Number.isSafeInteger(size) || size < 0) throw new Error("Bad chunk size");
      if (size === 0) break;
      total += size;
      if (total > answerBodyBytesMax) throw new Error("Answer body too large");
      parts.push(await this.#take(size));
      if ((await this.#line()) !== "") throw new Error("Bad chunk end");
    }
    while ((await this.#line()) !== "") { /* trailers */ }
    const body = new Uint8Array(total);
    let at = 0;
    for (const p of parts) {
      body.set(p, at);
      at += p.length;
    }
    return body;
  }

  /** Reads more bytes into the buffer (growing it); false at the end of the connection. */
  async #fill(): Promise<boolean> {
    if (this.#ended) return false;
    if (this.#len === this.#buf.length) {
      if (this.#buf.length >= answerHeadBytesMax + answerBodyBytesMax + readChunkBytes) {
        throw new Error("Answer too large");
      }
      const bigger = new Uint8Array(this.#buf.length * 2);
      bigger.set(this.#buf.subarray(0, this.#len));
      this.#buf = bigger;
    }
    const n = await this.conn.read(this.#buf.subarray(this.#len));
    if (n === null) {
      this.#ended = true;
      return false;
    }
    this.#len += n;
    return true;
  }
}
