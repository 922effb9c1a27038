/**
 * `deno task status --events`: follows the tracker's `GET /v1/events` and every owner host
 * agent's (found the way status finds them: the tracker's volumes name their owners, looked up
 * again every `ownerLookupMs`), one line per event like `drbdsetup events2`:
 *
 *   2026-11-24T22:40:01.123Z host backup component.offline - backup offline (Connection refused)
 *   time                     service  kind               volume  message
 *
 * With `--json`, each event's JSON (src/events.ts) with `source` (the URL it came from) added.
 * Each stream starts with what the service still keeps (`?since=0`: its ring), then follows;
 * when a service drops, the follower says so on stderr and reconnects with backoff
 * (`reconnectMsMin` doubling to `reconnectMsMax`), resuming after the last event it printed
 * (`Last-Event-ID`), or from the start of its ring when `/healthz` names another pid (it
 * restarted: its sequence numbers began again). Runs until the signal aborts.
 */
import { eventSchema, type TrackmirrorEvent } from "../../src/events.ts";
import { TrackerClient } from "../../tracker/client.ts";

/** How often the tracker is asked for the volumes' owners (new hosts are followed). */
export const ownerLookupMs = 5000;
/** First wait before reconnecting to a service that dropped, in ms (doubles). */
export const reconnectMsMin = 250;
/** Longest wait between reconnects, in ms. */
export const reconnectMsMax = 5000;
/** Longest the follower waits for a service's `/healthz` before it counts it dropped. */
const healthzTimeoutMs = 3000;
/** Longest an SSE line may be (an event is at most 4 KiB of JSON; this leaves room). */
const sseLineCharsMax = 64 * 1024;

export interface FollowOptions {
  /** Every tracker of the list is followed (each keeps its own events). */
  trackerUrls: string[];
  token?: string;
  json: boolean;
  signal: AbortSignal;
  /** Where event lines go (stdout by default) and notes about connections (stderr). */
  out?: (line: string) => void;
  note?: (line: string) => void;
}

/** One event as a line: time, service, kind, volume (or -), message; or JSON with `source`. */
export function eventLine(e: TrackmirrorEvent, source: string, json: boolean): string {
  if (json) return JSON.stringify({ ...e, source });
  return `${e.atIso} ${e.service} ${e.kind} ${e.volume ?? "-"} ${e.message}`;
}

/** Follows the tracker and its volumes' owners until `signal` aborts. */
export async function followEvents(opts: FollowOptions): Promise<void> {
  const out = opts.out ?? ((l) => console.log(l));
  const note = opts.note ?? ((l) => console.error(l));
  const followed = new Map<string, Promise<void>>();
  const follow = (url: string) => {
    if (followed.has(url)) return;
    followed.set(url, followStream(url, { ...opts, out, note }));
  };
  for (const url of opts.trackerUrls) follow(url);
  const tracker = new TrackerClient(opts.trackerUrls, { token: opts.token, timeoutMs: 3000 });
  while (!opts.signal.aborted) {
    try {
      for (const v of await tracker.listVolumes()) follow(v.ownerUrl.replace(/\/+$/, ""));
    } catch { /* the tracker's own stream says it dropped */ }
    await sleep(ownerLookupMs, opts.signal);
  }
  await Promise.all(followed.values());
}

/** One service's stream, reconnecting with backoff until aborted. */
async function followStream(
  url: string,
  opts: FollowOptions & { out: (l: string) => void; note: (l: string) => void },
): Promise<void> {
  let lastId: string | undefined;
  let lastPid: number | undefined;
  let waitMs = reconnectMsMin;
  let connectedOnce = false;
  while (!opts.signal.aborted) {
    let why: string;
    try {
      // Sequence numbers are per process: a service that restarted since the last event printed
      // (another pid at /healthz) is read from the start of its ring, not after that seq.
      const pid = await healthzPid(url, opts.signal);
      if (lastPid !== undefined && pid !== lastPid && lastId !== undefined) {
        opts.note(`status --events: ${url}: restarted (pid ${lastPid} -> ${pid})`);
        lastId = undefined;
      }
      lastPid = pid;
      const headers: Record<string, string> = { accept: "text/event-stream" };
      if (opts.token) headers.authorization = `Bearer ${opts.token}`;
      if (lastId !== undefined) headers["last-event-id"] = lastId;
      const res = await fetch(`${url}/v1/events${lastId === undefined ? "?since=0" : ""}`, {
        headers,
        signal: opts.signal,
      });
      if (!res.ok || !res.body) {
        await res.body?.cancel();
        throw new Error(`HTTP ${res.status}`);
      }
      if (connectedOnce) opts.note(`status --events: ${url}: connected again`);
      connectedOnce = true;
      waitMs = reconnectMsMin;
      for await (const message of sseMessages(res.body)) {
        const parsed = eventSchema.safeParse(safeJson(message.data));
        if (!parsed.success) continue; // not an event of ours
        lastId = message.id ?? String(parsed.data.seq);
        opts.out(eventLine(parsed.data, url, opts.json));
      }
      why = "the stream ended";
    } catch (err) {
      if (opts.signal.aborted) return;
      why = (err as Error).message;
    }
    if (opts.signal.aborted) return;
    opts.note(`status --events: ${url}: ${why}; reconnecting in ${waitMs} ms`);
    await sleep(waitMs, opts.signal);
    waitMs = Math.min(reconnectMsMax, waitMs * 2);
  }
}

/** The pid `/healthz` names (every service answers it without a token). */
async function healthzPid(url: string, signal: AbortSignal): Promise<number | undefined> {
  const res = await fetch(`${url}/healthz`, {
    signal: AbortSignal.any([signal, AbortSignal.timeout(healthzTimeoutMs)]),
  });
  if (!res.ok) {
    await res.body?.cancel();
    throw new Error(`/healthz answered HTTP ${res.status}`);
  }
  const pid = (await res.json() as { pid?: unknown }).pid;
  return typeof pid === "number" ? pid : undefined;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** The messages of a server-sent event stream (comments skipped). */
export async function* sseMessages(
  body: ReadableStream<Uint8Array>,
): AsyncGenerator<{ id?: string; event?: string; data: string }> {
  let buffer = "";
  let id: string | undefined;
  let event: string | undefined;
  let data: string[] = [];
  for await (const chunk of body.pipeThrough(new TextDecoderStream())) {
    buffer += chunk;
    if (buffer.length > sseLineCharsMax && !buffer.includes("\n")) {
      throw new Error(`An event stream line exceeds ${sseLineCharsMax} characters`);
    }
    let nl: number;
    while ((nl = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, nl).replace(/\r$/, "");
      buffer = buffer.slice(nl + 1);
      if (line === "") {
        if (data.length > 0) yield { id, event, data: data.join("\n") };
        id = undefined;
        event = undefined;
        data = [];
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "id") id = value;
      else if (field === "event") event = value;
      else if (field === "data") data.push(value);
    }
  }
}

/** Waits `ms`, or less when `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done);
  });
}
