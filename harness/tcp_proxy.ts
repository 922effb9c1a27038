/**
 * A fault-injecting TCP proxy for tests: listens on a free loopback port and forwards every
 * connection to a target (TCP or unix socket), byte for byte, in both directions. A test can cut
 * every live connection mid-stream (both sides see an abrupt close), hold traffic (a partition:
 * bytes wait in the proxy, nothing is lost), add a delay per chunk, or refuse new connections.
 * Bounded: at most `connectionsMax` connections; a held direction buffers at most what the
 * kernel's socket buffers and one read chunk hold, since the proxy stops reading while held.
 */

/** Where the proxy forwards to. */
export type ProxyTarget = { hostname: string; port: number } | { path: string };

export interface ProxyOptions {
  /** Most connections at once; more are closed on accept. */
  connectionsMax?: number;
}

interface Pipe {
  client: Deno.Conn;
  upstream: Deno.Conn;
  done: Promise<void>;
}

/** One running proxy; `close()` stops it and every connection. */
export class TcpProxy {
  readonly port: number;
  readonly #listener: Deno.Listener;
  readonly #pipes = new Set<Pipe>();
  readonly #connectionsMax: number;
  #held = false;
  #holdWaiters: (() => void)[] = [];
  #refusing = false;
  #delayMs = 0;
  #closed = false;
  #acceptLoop: Promise<void>;
  /** Connections accepted and forwarded so far. */
  connectionsAccepted = 0;
  /** Connections cut by `cut()`. */
  connectionsCut = 0;
  /** Bytes forwarded host → target and target → host. */
  bytesUp = 0;
  bytesDown = 0;

  constructor(readonly target: ProxyTarget, opts: ProxyOptions = {}) {
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.port = (this.#listener.addr as Deno.NetAddr).port;
    this.#connectionsMax = opts.connectionsMax ?? 64;
    this.#acceptLoop = this.#accept();
  }

  /** `tcp://127.0.0.1:PORT` style address of the proxy. */
  get address(): { hostname: string; port: number } {
    return { hostname: "127.0.0.1", port: this.port };
  }

  /** Number of live connections. */
  get connections(): number {
    return this.#pipes.size;
  }

  /** Closes every live connection abruptly; the proxy keeps accepting new ones. */
  cut(): void {
    for (const p of this.#pipes) {
      this.connectionsCut++;
      closeQuietly(p.client);
      closeQuietly(p.upstream);
    }
  }

  /** Stops forwarding in both directions until `release()`; bytes wait, none are lost. */
  hold(): void {
    this.#held = true;
  }

  release(): void {
    this.#held = false;
    for (const wake of this.#holdWaiters.splice(0)) wake();
  }

  /** Delays every forwarded chunk by `ms` (0 turns it off). */
  delay(ms: number): void {
    this.#delayMs = ms;
  }

  /** While true, new connections are accepted and closed at once (a dead peer's port). */
  refuse(on: boolean): void {
    this.#refusing = on;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.release();
    closeQuietly(this.#listener);
    this.cut();
    await this.#acceptLoop;
    await Promise.all([...this.#pipes].map((p) => p.done));
  }

  async #accept(): Promise<void> {
    while (!this.#closed) {
      let client: Deno.Conn;
      try {
        client = await this.#listener.accept();
      } catch {
        return; // listener closed
      }
      if (this.#refusing || this.#pipes.size >= this.#connectionsMax) {
        closeQuietly(client);
        continue;
      }
      let upstream: Deno.Conn;
      try {
        upstream = "path" in this.target
          ? await Deno.connect({ transport: "unix", path: this.target.path })
          : await Deno.connect({ hostname: this.target.hostname, port: this.target.port });
      } catch {
        closeQuietly(client);
        continue;
      }
      if ("setNoDelay" in upstream) (upstream as Deno.TcpConn).setNoDelay(true);
      (client as Deno.TcpConn).setNoDelay(true);
      this.connectionsAccepted++;
      const pipe = { client, upstream } as Pipe;
      pipe.done = Promise.all([
        this.#forward(client, upstream, (n) => this.bytesUp += n),
        this.#forward(upstream, client, (n) => this.bytesDown += n),
      ]).then(() => {
        this.#pipes.delete(pipe);
      });
      this.#pipes.add(pipe);
    }
  }

  async #forward(from: Deno.Conn, to: Deno.Conn, count: (n: number) => void): Promise<void> {
    const buf = new Uint8Array(64 * 1024);
    try {
      while (true) {
        while (this.#held) await new Promise<void>((r) => this.#holdWaiters.push(r));
        const n = await from.read(buf);
        if (n === null) break;
        if (this.#delayMs > 0) await new Promise((r) => setTimeout(r, this.#delayMs));
        while (this.#held) await new Promise<void>((r) => this.#holdWaiters.push(r));
        let off = 0;
        while (off < n) off += await to.write(buf.subarray(off, n));
        count(n);
      }
    } catch {
      // a cut or a peer's reset: close both sides below
    }
    closeQuietly(from);
    closeQuietly(to);
  }
}

function closeQuietly(c: { close(): void }): void {
  try {
    c.close();
  } catch {
    // already closed
  }
}
