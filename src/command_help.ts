/**
 * `--help` and `--version` for every command: a command describes its flags once, in a table that
 * both parses them (`node:util` parseArgs through `parseFlags`) and documents them, so the help
 * cannot leave a flag out or show a default the code does not use.
 */
import { parseFlags } from "./flags.ts";
import { tokenFlagOptions } from "./token.ts";
import { version } from "./version.ts";

/** One flag: its parseArgs type, the value's placeholder, what it does and bounds, its default. */
export interface FlagDoc {
  type: "string" | "boolean";
  multiple?: boolean;
  /** Placeholder shown after the flag, e.g. "P", "URL"; none for a boolean. */
  value?: string;
  /** What the flag does and the values it takes (bounds); starts with a lower-case letter. */
  doc: string;
  /** Shown as "(default …)"; absent: no default (the flag is off or optional). */
  fallback?: string;
}

export type FlagDocs = Record<string, FlagDoc>;

/** How a command is called and what it does, for `--help`. */
export interface CommandDoc<T extends FlagDocs> {
  /** e.g. "deno task tracker [flags]". */
  usage: string;
  /** One or two sentences on what the command does. */
  about: string;
  flags: T;
  /** Text after the flag list: environment variables, exit codes. */
  notes?: string;
}

/** The two token flags every service and operator command takes, documented. */
export const tokenFlagDocs = {
  token: {
    ...tokenFlagOptions.token,
    value: "T",
    doc: "shared bearer token (prefer --token-file or TRACKMIRROR_TOKEN: a flag shows in ps)",
  },
  "token-file": {
    ...tokenFlagOptions["token-file"],
    value: "PATH",
    doc: "read the token from the first line of PATH",
  },
} satisfies FlagDocs;

/** `--tracker` of the operator's commands (reconstruct, verify): a list, the first that answers. */
export const trackerListFlagDocs = {
  tracker: {
    type: "string",
    value: "URL[,URL...]",
    doc: "the tracker, which knows every volume and its owner; several trackers over one " +
      "store: the first that answers",
    fallback: "http://127.0.0.1:8701",
  },
} satisfies FlagDocs;

/** The flags every command answers without doing anything else. */
const builtinFlagDocs = {
  help: { type: "boolean", doc: "print this help and exit" },
  version: { type: "boolean", doc: "print the version and exit" },
} satisfies FlagDocs;

/** Width of the flag column in help text; longer flags put their doc on the next line. */
const flagColumnChars = 26;
/** Help text wraps at this width (the width of an 80-column terminal with a margin). */
const helpLineChars = 100;

/** Words of `text` in lines of at most `width` characters (a longer word gets its own line). */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/).filter((w) => w !== "")) {
    if (line !== "" && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line === "" ? word : `${line} ${word}`;
    }
  }
  if (line !== "") lines.push(line);
  return lines;
}

/** A byte count as the flags take it, exactly: 1GiB, 64MiB, 4096 (never rounded). */
export function sizeText(bytes: number): string {
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let text = `${bytes}`;
  for (let i = 0, unit = 1024; i < units.length; i++, unit *= 1024) {
    if (bytes >= unit && bytes % unit === 0) text = `${bytes / unit}${units[i]}`;
  }
  return text;
}

/** The `--help` text of `cmd`: usage, what it does, then every flag with its default. */
export function commandHelp<T extends FlagDocs>(cmd: CommandDoc<T>): string {
  const out = [`Usage: ${cmd.usage}`, ...wrap(cmd.about, helpLineChars - 2).map((l) => `  ${l}`)];
  out.push("", "Flags:");
  const docWidth = helpLineChars - flagColumnChars;
  const flags: [string, FlagDoc][] = [
    ...Object.entries(cmd.flags),
    ...Object.entries(builtinFlagDocs),
  ];
  for (const [name, f] of flags) {
    const head = `  --${name}${f.value === undefined ? "" : ` ${f.value}`}`;
    const text = f.fallback === undefined ? f.doc : `${f.doc} (default ${f.fallback})`;
    const body = wrap(`${text}${f.multiple ? "; repeatable" : ""}`, docWidth);
    const indent = " ".repeat(flagColumnChars);
    if (head.length < flagColumnChars) {
      out.push(head.padEnd(flagColumnChars) + body[0]);
    } else {
      out.push(head, indent + body[0]);
    }
    for (const line of body.slice(1)) out.push(indent + line);
  }
  if (cmd.notes !== undefined) {
    out.push("");
    for (const para of cmd.notes.split("\n")) {
      const [first, ...rest] = wrap(para, helpLineChars);
      out.push(first ?? "", ...wrap(rest.join(" "), helpLineChars - 2).map((l) => `  ${l}`));
    }
  }
  return out.join("\n");
}

/**
 * What to print instead of running when `args` asks for help or the version: `--help` wins over
 * everything else on the line (even a bad flag, so a confused user still gets the help), then
 * `--version`. Only flags before a `--` count.
 */
export function helpOrVersion(args: string[], help: () => string): string | undefined {
  const end = args.indexOf("--");
  const flags = end < 0 ? args : args.slice(0, end);
  if (flags.includes("--help") || flags.includes("-h")) return help();
  if (flags.includes("--version")) return `trackmirror ${version}`;
  return undefined;
}

/** Prints the help or version and exits 0 when `args` asks for either. */
export function exitOnHelpOrVersion(args: string[], help: () => string): void {
  const text = helpOrVersion(args, help);
  if (text === undefined) return;
  console.log(text);
  Deno.exit(0);
}

/**
 * Parses `args` against `cmd`'s flag table; `--help` and `--version` print and exit 0. Errors
 * are RangeErrors naming the flag (runMain exits 2 with them).
 */
export function parseCommand<T extends FlagDocs>(args: string[], cmd: CommandDoc<T>) {
  exitOnHelpOrVersion(args, () => commandHelp(cmd));
  const options: Record<string, { type: "string" | "boolean"; multiple?: boolean }> = {};
  const all: FlagDocs = { ...cmd.flags, ...builtinFlagDocs };
  for (const [name, f] of Object.entries(all)) {
    options[name] = f.multiple ? { type: f.type, multiple: true } : { type: f.type };
  }
  return parseFlags(args, options as unknown as T);
}
