/**
 * How an event (src/events.ts) is written as one log line: `text` for people on a terminal,
 * `json` (JSON lines, `--log-format json`) for log shippers. The format is chosen once per
 * process by its main (`setLogFormat`); debug and info go to stdout, warn and error to stderr,
 * as the services' console lines always did.
 *
 *   text: 2026-11-24T22:40:01.123Z INFO  host backup offline (Connection refused)
 *   json: {"seq":7,"at":1795646401123,"atIso":"2026-11-24T22:40:01.123Z","level":"info",...}
 *
 * The text line is time, level (padded to 5), service, then the message (which names the volume
 * when there is one); `data` appears only in JSON.
 */

/** The two line formats `--log-format` takes. */
export const logFormats = ["text", "json"] as const;
export type LogFormat = typeof logFormats[number];

/** The fields of an event a line is made of (the event itself, structurally). */
export interface LineEvent {
  atIso: string;
  level: "debug" | "info" | "warn" | "error";
  service: string;
  message: string;
}

/** `--log-format`'s value checked: undefined is the default, text; anything else is refused. */
export function parseLogFormat(value: string | undefined): LogFormat {
  if (value === undefined) return "text";
  if ((logFormats as readonly string[]).includes(value)) return value as LogFormat;
  throw new RangeError(`--log-format "${value}" must be one of: ${logFormats.join(", ")}`);
}

/** The flag table entry of `--log-format`, shared by tracker, backup, host and start. */
export const logFormatFlagDoc = {
  "log-format": {
    type: "string",
    value: "text|json",
    doc: "log lines as text (time, level, service, message) or JSON lines (one event each)",
    fallback: "text",
  },
} as const;

/** One line (no newline) for `event` in `format`. */
export function formatLogLine(event: LineEvent, format: LogFormat): string {
  if (format === "json") return JSON.stringify(event);
  return `${event.atIso} ${event.level.toUpperCase().padEnd(5)} ${event.service} ${event.message}`;
}

let processFormat: LogFormat = "text";
let quiet = false;

/** Sets this process's line format (its main does, from `--log-format`). */
export function setLogFormat(format: LogFormat): void {
  processFormat = format;
}

/** The process's line format. */
export function logFormat(): LogFormat {
  return processFormat;
}

/** Stops (true) or resumes writing lines; for in-process tests that only read the ring. */
export function setLogQuiet(value: boolean): void {
  quiet = value;
}

/** Writes `event` as one line in the process's format: debug/info to stdout, others to stderr. */
export function writeLogLine(event: LineEvent): void {
  if (quiet) return;
  const line = formatLogLine(event, processFormat);
  if (event.level === "warn" || event.level === "error") console.error(line);
  else console.log(line);
}
