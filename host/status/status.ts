/**
 * `deno task status`: the whole system in one answer (issue 11; DRBD's `drbdadm status` /
 * `drbdsetup status --json` and `rbd mirror image status` are the anchors). Found from the
 * tracker as reconstruct finds it: its volumes name their owners' host agents, and each agent's
 * status names the backup it forks to.
 *
 *   deno task status [--tracker URL[,URL...]] [--json] [--watch [SECONDS]] [--events] (follow
 *     events: host/status/status_events.ts)
 *                    [--token T | --token-file PATH]
 *
 * Output: a table (host/status/status_table.ts) or, with --json, the document of
 * src/status/status_document.ts on one line. --watch refreshes every SECONDS (2): the screen is
 * cleared on a terminal, blocks follow each other (a blank line apart) otherwise; it runs until
 * interrupted and then exits with the last block's code.
 *
 * Exit codes (stable): 0 healthy; 1 degraded (serving, but something is dirty, lagging,
 * resyncing, untrusted or degraded); 2 bad flags; 3 down (the tracker, a host agent or a backup
 * does not answer, the tracker's store does not answer (e.g. etcd without quorum), a component
 * is offline, a volume is not served).
 */
import { failoverTargetsMax } from "../../src/failover.ts";
import {
  type CommandDoc,
  commandHelp,
  exitOnHelpOrVersion,
  type FlagDocs,
  parseCommand,
  tokenFlagDocs,
} from "../../src/command_help.ts";
import { parseUrlList, runMain } from "../../src/flags.ts";
import { resolveToken } from "../../src/token.ts";
import { assembleStatus } from "../../src/status/status_assemble.ts";
import { statusExit, type SystemStatus } from "../../src/status/status_document.ts";
import { gatherAnswers } from "../../src/status/status_gather.ts";
import { followEvents } from "./status_events.ts";
import { renderStatusTable } from "./status_table.ts";

/** Refresh interval of --watch without a value. */
export const watchSecondsDefault = 2;
/** Bounds of --watch SECONDS. */
const watchSecondsMin = 0.1;
const watchSecondsMax = 3600;

/** The status command's flags, parsed and documented from this one table. */
const statusCommand = {
  usage: "deno task status [flags]",
  about: "The whole system in one answer, found from the tracker: per volume its owner and " +
    "mode, in sync or why not, dirty bytes and the oldest mark's age, backup lag, resync " +
    "progress; component health.",
  flags: {
    tracker: {
      type: "string",
      value: "URL[,URL...]",
      doc: "the tracker; several over one store: the first that answers, each one's health shown",
      fallback: "http://127.0.0.1:8701",
    },
    json: {
      type: "boolean",
      doc: 'the status document on one line (README: "Is my mirror in sync?"); with --events: ' +
        "JSON lines",
    },
    // Taken out of the arguments by takeWatchFlag before parsing (its value is optional); listed
    // here so the help shows it.
    watch: {
      type: "string",
      value: "[SECONDS]",
      doc: `refresh every SECONDS (${watchSecondsMin} .. ${watchSecondsMax}) until Ctrl-C`,
      fallback: "2 when given without a value",
    },
    events: {
      type: "boolean",
      doc: "follow the events of the tracker and every owner host agent, one line each (time, " +
        "service, kind, volume, message) until Ctrl-C; reconnects when a service drops; not " +
        "with --watch",
    },
    ...tokenFlagDocs,
  },
  notes: "Exit codes: 0 healthy, 1 degraded, 2 bad flags, 3 down.",
} satisfies CommandDoc<FlagDocs>;

const encoder = new TextEncoder();

/**
 * Takes `--watch [SECONDS]` (or `--watch=SECONDS`) out of `args`: parseArgs has no flag with an
 * optional value. Returns the interval (undefined without --watch) and the other arguments.
 */
export function takeWatchFlag(args: readonly string[]): { watchSeconds?: number; rest: string[] } {
  const rest: string[] = [];
  let watchSeconds: number | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg !== "--watch" && !arg.startsWith("--watch=")) {
      rest.push(arg);
      continue;
    }
    let text: string | undefined;
    if (arg.startsWith("--watch=")) text = arg.slice("--watch=".length);
    else if (i + 1 < args.length && !args[i + 1].startsWith("--")) text = args[++i];
    watchSeconds = text === undefined ? watchSecondsDefault : Number(text);
    if (
      text !== undefined &&
      (!/^\d+(\.\d+)?$/.test(text) || watchSeconds < watchSecondsMin ||
        watchSeconds > watchSecondsMax)
    ) {
      throw new RangeError(
        `--watch "${text}" must be a number of seconds from ${watchSecondsMin} to ${watchSecondsMax}`,
      );
    }
  }
  return { watchSeconds, rest };
}

/** One block of output: the table, or the JSON document on one line. */
export function renderStatus(doc: SystemStatus, json: boolean): string {
  return json ? JSON.stringify(doc) : renderStatusTable(doc).join("\n");
}

async function main(): Promise<number> {
  // --help and --version win over a bad --watch value on the same line.
  exitOnHelpOrVersion(Deno.args, () => commandHelp(statusCommand));
  const { watchSeconds, rest } = takeWatchFlag(Deno.args);
  const flags = parseCommand(rest, statusCommand);
  const trackerUrl = parseUrlList(
    "tracker",
    flags.tracker,
    "http://127.0.0.1:8701",
    failoverTargetsMax,
  );
  const token = resolveToken(flags);
  if (flags.events) {
    if (watchSeconds !== undefined) throw new RangeError("--events and --watch cannot be combined");
    const aborter = new AbortController();
    const onSignal = () => aborter.abort();
    Deno.addSignalListener("SIGINT", onSignal);
    Deno.addSignalListener("SIGTERM", onSignal);
    await followEvents({
      trackerUrls: trackerUrl,
      token,
      json: flags.json ?? false,
      signal: aborter.signal,
    });
    return statusExit.healthy;
  }
  const json = flags.json ?? false;
  const snapshot = async () => assembleStatus(await gatherAnswers({ trackerUrl, token }));
  if (watchSeconds === undefined) {
    const doc = await snapshot();
    console.log(renderStatus(doc, json));
    return doc.exitCode;
  }
  const tty = Deno.stdout.isTerminal();
  let code: number = statusExit.healthy;
  let stop: () => void = () => {};
  const stopped = new Promise<void>((resolve) => stop = resolve);
  const onSignal = () => stop();
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  try {
    for (let first = true;; first = false) {
      const doc = await snapshot();
      code = doc.exitCode;
      const block = renderStatus(doc, json);
      if (tty) Deno.stdout.writeSync(encoder.encode(`\x1b[H\x1b[2J${block}\n`));
      else console.log(first || json ? block : `\n${block}`);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const next = new Promise<"next">((r) =>
        timer = setTimeout(() => r("next"), watchSeconds * 1000)
      );
      const why = await Promise.race([next, stopped.then(() => "stop" as const)]);
      clearTimeout(timer);
      if (why === "stop") return code;
    }
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
}

if (import.meta.main) {
  await runMain(async () => {
    const code = await main();
    if (code !== 0) Deno.exit(code);
  });
}
