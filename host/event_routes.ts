/**
 * `GET /v1/events`: the host agent's events (its view of backup and tracker, each volume's mode,
 * leases, trust, resync / cycle / verify progress, and its log lines) as server-sent events; the
 * stream itself is src/event_stream.ts.
 */
import { eventStreamApp, type EventStreamOptions } from "../src/event_stream.ts";

export function hostEventRoutes(opts: EventStreamOptions = {}) {
  return eventStreamApp("host agent", opts);
}
