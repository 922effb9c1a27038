/**
 * Events (issue 11 item 2): every state change a service sees — a component going offline, a
 * volume's mode, a lease, a resync's start, progress and end, a full journal, a volume turning
 * dirty — is one structured event. `EventLog.emit` gives it the next sequence number and the
 * time, writes it as one log line (src/log_line.ts: text or JSON lines), keeps it in a bounded
 * ring for replay, and hands it to the subscribers (`GET /v1/events` followers, server-sent
 * events). The services' ad hoc console lines go the same way as kind `log`.
 *
 * One log per process (`processEvents`): the state-change points deep in host/, tracker/ and
 * backup/ call `emit(...)` without an event log threaded through every constructor. Sequence
 * numbers start at 1 with the process; a follower asking for events after a sequence this
 * process never reached (it restarted) gets the whole ring.
 *
 * Hand-written rather than a logger from npm: what the project needs is the ring, the sequence
 * numbers and the subscribers, which no logger has; @logtape/logtape (Deno-first, zero deps) was
 * considered, but its records (category, message parts, properties; levels "warning"/"fatal")
 * would only carry our event to a formatter we would write anyway, and its `configure()` is
 * process-global and asynchronous, with every line dropped until it has run. What is left of a
 * logger here is one `console.log` of a formatted line (src/log_line.ts).
 *
 * Capacity: at most `eventRingMax` events of at most `eventBytesMax` bytes each (src/limits.ts).
 */
import { z } from "zod";
import type { Clock } from "./clock.ts";
import { systemClock } from "./clock.ts";
import { isoTime } from "./iso_time.ts";
import { eventBytesMax, eventRingMax } from "./limits.ts";
import { writeLogLine } from "./log_line.ts";
import { volumeName } from "./schemas.ts";

export const eventLevels = ["debug", "info", "warn", "error"] as const;
export const eventServices = ["tracker", "backup", "host", "start"] as const;

/** One event, as logged in JSON lines and sent as the data of a server-sent event. */
export const eventSchema = z.object({
  /** Per process, from 1, one more for every event. */
  seq: z.number().int().positive(),
  /** Epoch ms, and its ISO 8601 twin. */
  at: z.number().int(),
  atIso: z.string(),
  level: z.enum(eventLevels),
  service: z.enum(eventServices),
  /** What happened, e.g. `component.offline`, `mode.change`, `resync.progress` (README table). */
  kind: z.string().regex(/^[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*)*$/),
  volume: volumeName.optional(),
  /** One sentence for people; it names the volume when there is one. */
  message: z.string(),
  /** The facts behind the message, for scripts (states, counts, bytes, errors). */
  data: z.record(z.string(), z.unknown()).optional(),
});

export type TrackmirrorEvent = z.infer<typeof eventSchema>;
export type EventLevel = typeof eventLevels[number];
export type EventService = typeof eventServices[number];

/** What a caller of `emit` gives; the log adds `seq`, and `at` and `atIso` unless given. */
export interface EventInput {
  /**
   * When it happened (epoch ms), for an event told after the fact (a job's start seen by a
   * watcher); default now. `seq` still follows the order of emitting, so `at` may go back.
   */
  at?: number;
  level?: EventLevel;
  service: EventService;
  kind: string;
  volume?: string;
  message: string;
  data?: Record<string, unknown>;
}

export interface EventLogOptions {
  clock?: Clock;
  /** Most events kept for replay (default `eventRingMax`). */
  ringMax?: number;
  /** Where each event's line goes (default: the process's log line writer). */
  write?: (event: TrackmirrorEvent) => void;
}

/** A process's events: sequence, line, ring, subscribers. */
export class EventLog {
  readonly #ring: TrackmirrorEvent[] = [];
  /** Index in `#ring` of the oldest event once the ring is full. */
  #head = 0;
  #seq = 0;
  readonly #ringMax: number;
  readonly #clock: Clock;
  readonly #write: (event: TrackmirrorEvent) => void;
  readonly #subscribers = new Set<(event: TrackmirrorEvent) => void>();
  readonly #enders = new Set<() => void>();

  constructor(opts: EventLogOptions = {}) {
    this.#ringMax = opts.ringMax ?? eventRingMax;
    if (!Number.isInteger(this.#ringMax) || this.#ringMax < 1) {
      throw new RangeError(`Event ring bound ${this.#ringMax} must be a positive integer`);
    }
    this.#clock = opts.clock ?? systemClock;
    this.#write = opts.write ?? writeLogLine;
  }

  /** The sequence number of the latest event (0 before the first). */
  get lastSeq(): number {
    return this.#seq;
  }

  /** Records `input` as the next event: one log line, into the ring, to every subscriber. */
  emit(input: EventInput): TrackmirrorEvent {
    const at = input.at ?? this.#clock.now();
    const event: TrackmirrorEvent = {
      seq: ++this.#seq,
      at,
      atIso: isoTime(at),
      level: input.level ?? "info",
      service: input.service,
      kind: input.kind,
      ...(input.volume === undefined ? {} : { volume: input.volume }),
      message: input.message,
      ...(input.data === undefined ? {} : { data: boundedData(input.data) }),
    };
    if (this.#ring.length < this.#ringMax) {
      this.#ring.push(event);
    } else {
      this.#ring[this.#head] = event;
      this.#head = (this.#head + 1) % this.#ringMax;
    }
    this.#write(event);
    for (const fn of this.#subscribers) {
      try {
        fn(event);
      } catch { /* a subscriber's failure is its own; the event is logged and kept */ }
    }
    return event;
  }

  /**
   * The kept events after `seq`, oldest first. A `seq` this log never reached (the process
   * restarted since the caller saw it) replays the whole ring.
   */
  after(seq: number): TrackmirrorEvent[] {
    const all = [...this.#ring.slice(this.#head), ...this.#ring.slice(0, this.#head)];
    if (seq > this.#seq) return all;
    return all.filter((e) => e.seq > seq);
  }

  /**
   * Calls `fn` with every event from now on, and `end` (once) when the process ends its
   * followers (`endFollowers`); returns the unsubscribe.
   */
  subscribe(fn: (event: TrackmirrorEvent) => void, end?: () => void): () => void {
    this.#subscribers.add(fn);
    if (end) this.#enders.add(end);
    return () => {
      this.#subscribers.delete(fn);
      if (end) this.#enders.delete(end);
    };
  }

  /**
   * Ends every follower's stream (a service stopping: its server's graceful shutdown waits for
   * open responses, and an event stream never ends by itself).
   */
  endFollowers(): void {
    const enders = [...this.#enders];
    this.#enders.clear();
    for (const end of enders) end();
  }

  /** How many subscribers follow the log now. */
  get subscribers(): number {
    return this.#subscribers.size;
  }
}

/** `data` as given, or a note that it was cut when its JSON exceeds `eventBytesMax`. */
function boundedData(data: Record<string, unknown>): Record<string, unknown> {
  const bytes = JSON.stringify(data).length;
  return bytes <= eventBytesMax ? data : { cut: true, bytes };
}

/** This process's event log. */
export const processEvents: EventLog = new EventLog();

/** Emits on this process's event log. */
export function emit(input: EventInput): TrackmirrorEvent {
  return processEvents.emit(input);
}

/** An ad hoc log line of `service` (kind `log`): timestamped and levelled like every event. */
export function logLine(
  service: EventService,
  level: EventLevel,
  message: string,
  volume?: string,
): void {
  processEvents.emit({ service, level, kind: "log", message, ...(volume ? { volume } : {}) });
}
