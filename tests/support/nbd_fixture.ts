/**
 * An NBD server on a free loopback port serving in-memory test devices, plus raw clients that are
 * all closed (with the server) when the fixture is disposed: `await using fx = await NbdFixture...`.
 */
import type { BlockDevice } from "../../src/block_device.ts";
import { type NbdServer, type NbdServerOptions, serveNbd } from "../../host/nbd/server.ts";
import { RawNbdClient } from "./nbd_raw_client.ts";
import { freePort } from "../../harness/service_process.ts";

export class NbdFixture {
  readonly logs: string[] = [];
  readonly clients: RawNbdClient[] = [];
  readonly #beforeClose: (() => void)[] = [];
  server!: NbdServer;

  /** Serves `exports` (name → device) on a free port with `options` overriding the defaults. */
  static start(
    exports: Record<string, BlockDevice>,
    options: Partial<NbdServerOptions> = {},
  ): NbdFixture {
    const fx = new NbdFixture();
    fx.server = serveNbd({
      lookup: (name) => Object.hasOwn(exports, name) ? exports[name] : undefined,
      listExports: () => Object.keys(exports),
      port: freePort(),
      log: (m) => fx.logs.push(m),
      ...options,
    });
    return fx;
  }

  /** A connected client, before the greeting. */
  async connect(target?: { path: string }): Promise<RawNbdClient> {
    const c = await RawNbdClient.connect(target ?? { port: this.server.port });
    this.clients.push(c);
    return c;
  }

  /** A client in the transmission phase of `name` (via NBD_OPT_GO). */
  async open(name: string, opts: { structured?: boolean } = {}): Promise<RawNbdClient> {
    const c = await this.connect();
    await c.start();
    await c.go(name, opts);
    return c;
  }

  /** Runs `fn` when the fixture is disposed, before the server closes (e.g. open a gate). */
  beforeClose(fn: () => void): void {
    this.#beforeClose.push(fn);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    for (const fn of this.#beforeClose.splice(0)) fn();
    for (const c of this.clients) c.close();
    await this.server.close();
    await Promise.all(this.clients.map((c) => c.ended()));
  }
}

/** Resolves after `ms`. */
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `cond` every 10 ms until it holds; throws after `ms`. */
export async function eventually(
  cond: () => boolean,
  ms = 2000,
  what = "condition",
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`Timed out after ${ms} ms waiting for ${what}`);
    await sleep(10);
  }
}

/** Deterministic test bytes: a pattern that differs at every offset, seeded. */
export function pattern(length: number, seed = 1): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}
