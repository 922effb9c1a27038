/**
 * The floors bench's plain-Deno measurements (no trackmirror code): a Deno KV durable commit at
 * depth 1, and an HTTP round trip on loopback at depth 1, the server either in this process or in
 * a child `deno` process (the tracker's shape: host agent and tracker are two processes).
 */

/** What a depth-1 loop of awaited operations did. */
export interface LoopStats {
  count: number;
  perSec: number;
  p50Us: number;
  p99Us: number;
}

/** Value size of each KV set: about one segment record of the tracker. */
export const kvValueBytes = 256;
/** Distinct keys the KV loop cycles through, so it rewrites existing keys as the tracker does. */
const kvKeysMax = 1024;
/** Body of each POST: the size of a small tracking mark as JSON. */
export const markBodyBytes = 100;

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/** Runs `op` back to back for `ms`; latencies of each call. */
async function loop(ms: number, op: (i: number) => Promise<void>): Promise<LoopStats> {
  const latenciesMs: number[] = [];
  const start = performance.now();
  let now = start;
  while (now - start < ms) {
    await op(latenciesMs.length);
    const end = performance.now();
    latenciesMs.push(end - now);
    now = end;
  }
  latenciesMs.sort((a, b) => a - b);
  return {
    count: latenciesMs.length,
    perSec: latenciesMs.length / ((now - start) / 1000),
    p50Us: quantile(latenciesMs, 0.5) * 1000,
    p99Us: quantile(latenciesMs, 0.99) * 1000,
  };
}

/** F5: `kv.atomic().set(key, 256 bytes).commit()` at depth 1 on a KV file at `path`. */
export async function kvCommits(path: string, ms: number): Promise<LoopStats> {
  const kv = await Deno.openKv(path);
  try {
    const value = new Uint8Array(kvValueBytes);
    return await loop(ms, async (i) => {
      const res = await kv.atomic().set(["floor", i % kvKeysMax], value).commit();
      if (!res.ok) throw new Error(`KV commit ${i} at ${path} was refused`);
    });
  } finally {
    kv.close();
  }
}

/** A 100-byte JSON body shaped like a mark (the padding brings it to `markBodyBytes`). */
export function markBody(): string {
  const base = { volume: "db0", host: "host0", extents: [{ offset: 0, length: 4096 }], pad: "" };
  const pad = markBodyBytes - JSON.stringify(base).length;
  if (pad < 0) throw new RangeError(`Mark body exceeds ${markBodyBytes} bytes`);
  return JSON.stringify({ ...base, pad: "x".repeat(pad) });
}

/** The server both variants run: reads the body, answers 204. */
const serverSource = `
Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: (a) => console.log(a.port) },
  async (req) => { await req.arrayBuffer(); return new Response(null, { status: 204 }); });
`;

/** POSTs `markBody()` to `url` at depth 1 for `ms` over one kept-alive connection. */
async function roundTrips(url: string, ms: number): Promise<LoopStats> {
  const client = Deno.createHttpClient({});
  const body = markBody();
  try {
    return await loop(ms, async () => {
      const res = await fetch(url, {
        method: "POST",
        body,
        headers: { "content-type": "application/json" },
        client,
      });
      await res.body?.cancel();
      if (res.status !== 204) throw new Error(`POST ${url} answered ${res.status}`);
    });
  } finally {
    client.close();
  }
}

/** F6, one process: Deno.serve and fetch share this process's event loop. */
export async function httpInProcess(ms: number): Promise<LoopStats> {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (req) => {
      await req.arrayBuffer();
      return new Response(null, { status: 204 });
    },
  );
  try {
    return await roundTrips(`http://127.0.0.1:${server.addr.port}/v1/track`, ms);
  } finally {
    await server.shutdown();
  }
}

/** Bound on the child server printing its port. */
const childStartMs = 10_000;

/** F6, two processes: the same server in a child `deno eval`, this process the client. */
export async function httpChildProcess(ms: number): Promise<LoopStats> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", serverSource],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const deadline = setTimeout(() => child.kill("SIGKILL"), childStartMs);
  try {
    let text = "";
    while (!text.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) throw new Error("The HTTP floor's server exited before printing its port");
      text += value;
    }
    clearTimeout(deadline);
    const port = Number(text.trim());
    if (!Number.isInteger(port) || port <= 0) throw new Error(`Bad port from server: "${text}"`);
    return await roundTrips(`http://127.0.0.1:${port}/v1/track`, ms);
  } finally {
    clearTimeout(deadline);
    try {
      child.kill("SIGTERM");
    } catch { /* already exited */ }
    await child.status;
    await reader.cancel().catch(() => {});
  }
}
