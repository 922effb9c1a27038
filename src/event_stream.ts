/**
 * `GET /v1/events`: an event log (src/events.ts) as server-sent events, for the host agent and
 * the tracker (each mounts it from its own route file). `id:` is the event's seq, `event:` its
 * kind, `data:` its JSON. A follower that gives `Last-Event-ID` (EventSource does on reconnect)
 * or `?since=SEQ` first gets the kept events after that seq (`?since=0`: the whole ring), then
 * every new one; without either, only new ones. A comment line (`: heartbeat`) goes out after
 * `eventHeartbeatMs` without an event, so proxies and clients can tell a quiet stream from a
 * dead one. A follower that falls `eventFollowerQueueMax` events behind is dropped with a last
 * comment saying so; it reconnects with its Last-Event-ID and replays from the ring.
 */
import { streamSSE } from "hono/streaming";
import { z } from "zod";
import { apiRoute, errorResponses, eventStreamResponse, newApiApp } from "./api_route.ts";
import { badRequest } from "./errors.ts";
import { type EventLog, eventSchema, processEvents, type TrackmirrorEvent } from "./events.ts";
import { eventFollowerQueueMax, eventHeartbeatMs } from "./limits.ts";

/** A sequence number as text (`?since=`, `Last-Event-ID`). */
const seqText = z.string().regex(/^\d{1,15}$/, "Must be a whole number (an event's seq)");

/** Where to start: the seq given by the header or the query, or undefined (live only). */
function startSeq(header: string | undefined, since: string | undefined): number | undefined {
  // Named as "Header …" / "Query …": an error message starts with a capital (tests/fuzz_http).
  for (const [what, value] of [["Header Last-Event-ID", header], ["Query since", since]] as const) {
    if (value === undefined || value === "") continue;
    const parsed = seqText.safeParse(value);
    if (!parsed.success) {
      throw badRequest(`${what} "${value}" must be a whole number (an event's seq)`);
    }
    return Number(value);
  }
  return undefined;
}

export interface EventStreamOptions {
  /** Default: this process's log. */
  log?: EventLog;
  /** Default: `eventHeartbeatMs`. */
  heartbeatMs?: number;
}

/** `?since=SEQ` as the API reference shows it (checked by `startSeq`, with the header). */
const eventsQuery = z.object({
  since: z.string().optional().openapi({
    description: "Replay the kept events after this seq first (0: the whole ring), then follow",
    example: "0",
  }),
});

/** A sub-app serving `GET /v1/events` from `log`, declared in the API reference. */
export function eventStreamApp(service: string, opts: EventStreamOptions = {}) {
  const log = opts.log ?? processEvents;
  const heartbeatMs = opts.heartbeatMs ?? eventHeartbeatMs;
  const app = newApiApp();
  apiRoute(app, {
    method: "get",
    path: "/v1/events",
    summary: `The ${service}'s events as server-sent events (id: seq, event: kind, data: JSON)`,
    tags: ["events"],
    request: { query: eventsQuery },
    responses: {
      200: eventStreamResponse("The stream: replay, then live events and heartbeats", eventSchema),
      ...errorResponses({ 400: "A since or Last-Event-ID that is not a whole number" }),
    },
  }, (c) => {
    const since = startSeq(c.req.header("last-event-id"), c.req.query("since"));
    return streamSSE(c, async (stream) => {
      const queue: TrackmirrorEvent[] = [];
      let ended = false;
      let overflow = false;
      let wake: (() => void) | undefined;
      const nudge = () => {
        wake?.();
        wake = undefined;
      };
      const unsubscribe = log.subscribe((e) => {
        if (queue.length >= eventFollowerQueueMax) overflow = true;
        else queue.push(e);
        nudge();
      }, () => {
        ended = true;
        nudge();
      });
      stream.onAbort(() => {
        ended = true;
        nudge();
      });
      try {
        // Subscribed before the replay is taken: nothing falls between the two; `sent` skips
        // what both hold.
        let sent = since ?? log.lastSeq;
        const replay = since === undefined ? [] : log.after(since);
        if (since !== undefined && since > log.lastSeq) sent = 0; // the process restarted
        for (const e of [...replay]) {
          if (ended) return;
          await stream.writeSSE({ id: String(e.seq), event: e.kind, data: JSON.stringify(e) });
          sent = e.seq;
        }
        while (!ended) {
          if (overflow) {
            await stream.write(`: dropped: more than ${eventFollowerQueueMax} events behind\n\n`);
            return;
          }
          const e = queue.shift();
          if (e === undefined) {
            const woken = new Promise<boolean>((resolve) => wake = () => resolve(true));
            let timer: ReturnType<typeof setTimeout> | undefined;
            const timedOut = new Promise<boolean>((resolve) =>
              timer = setTimeout(() => resolve(false), heartbeatMs)
            );
            const eventCame = await Promise.race([woken, timedOut]);
            clearTimeout(timer);
            if (!eventCame && !ended) await stream.write(": heartbeat\n\n");
            continue;
          }
          if (e.seq <= sent) continue;
          await stream.writeSSE({ id: String(e.seq), event: e.kind, data: JSON.stringify(e) });
          sent = e.seq;
        }
      } finally {
        unsubscribe();
      }
    });
  });
  return app;
}
