/**
 * A small tracker client for tests that fails over by itself, in the shape of an HTTP forwarder:
 * every request goes to the tracker that answered last; on a connection error or a 5xx it is sent
 * to the next one, each at most once. A host agent pointed at it switches trackers without
 * knowing. It stands in for the host's own `--tracker A,B` failover (issue 12 item 2, client
 * side), built separately; marks are idempotent, so a resend after a tracker died mid-request
 * is harmless.
 */

/** Bound on one forwarded request to one tracker. */
const forwardTimeoutMs = 10_000;

export interface TrackerFailover {
  /** Where to point a host agent (`--tracker`). */
  url: string;
  /** Requests that moved to another tracker because one did not answer. */
  readonly failovers: number;
  /** Requests answered by each tracker, by index. */
  readonly answered: number[];
  close(): Promise<void>;
}

/** Starts the forwarder on a free loopback port in front of `trackers` (base URLs). */
export function startTrackerFailover(trackers: readonly string[]): TrackerFailover {
  let current = 0;
  let failovers = 0;
  const answered = trackers.map(() => 0);
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const url = new URL(req.url);
    const body = req.method === "GET" || req.method === "HEAD"
      ? undefined
      : new Uint8Array(await req.arrayBuffer());
    let last: Response | null = null;
    for (let tried = 0; tried < trackers.length; tried++) {
      const at = (current + tried) % trackers.length;
      try {
        const res = await fetch(`${trackers[at]}${url.pathname}${url.search}`, {
          method: req.method,
          headers: req.headers,
          body,
          signal: AbortSignal.timeout(forwardTimeoutMs),
        });
        const bytes = new Uint8Array(await res.arrayBuffer());
        last = new Response(bytes, { status: res.status, headers: res.headers });
        if (res.status >= 500) continue;
        if (at !== current) failovers++;
        current = at;
        answered[at]++;
        return last;
      } catch {
        // not answering: the next one
      }
    }
    return last ?? Response.json({ error: "No tracker answered" }, { status: 503 });
  });
  const addr = server.addr as Deno.NetAddr;
  return {
    url: `http://127.0.0.1:${addr.port}`,
    get failovers() {
      return failovers;
    },
    answered,
    async close() {
      await server.shutdown();
    },
  };
}
