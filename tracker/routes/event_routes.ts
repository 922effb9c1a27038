/**
 * `GET /v1/events`: the tracker's events (volume registered, lease taken, dirty, clean, and its
 * log lines) as server-sent events; the stream itself is src/event_stream.ts.
 */
import { eventStreamApp, type EventStreamOptions } from "../../src/event_stream.ts";

export function eventRoutes(opts: EventStreamOptions = {}) {
  return eventStreamApp("tracker", opts);
}
