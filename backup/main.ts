/**
 * The backup service process: `deno task backup -- --port 8702 --data ./data/backup`.
 *
 * Its flags are the table `backupCommand` below, which `--help` prints with their defaults;
 * `--link-port` and `--link-socket` are the host link (src/link_protocol.ts).
 * Test only: env TRACKMIRROR_FAULT_FILE (src/fault_file.ts) injects journal / secondary faults.
 * SIGTERM / SIGINT: stop accepting, finish the in-flight group, exit 0.
 */
import { parseSize } from "../src/extent.ts";
import { faultFileEnv, faultFileFromEnv } from "../src/fault_file.ts";
import { checkPortFree, claimSocketPath, listenNaming, naming } from "../src/address_in_use.ts";
import { parseCommand, sizeText, tokenFlagDocs } from "../src/command_help.ts";
import { parsePort, runMain } from "../src/flags.ts";
import { backupBatchBytesMaxDefault } from "../src/limits.ts";
import { journalBytesMaxDefault, openBackup } from "./service.ts";
import { linkPortDefault } from "../src/link_protocol.ts";
import { resolveToken } from "../src/token.ts";
import { version } from "../src/version.ts";
import { logLine, processEvents } from "../src/events.ts";
import { logFormatFlagDoc, parseLogFormat, setLogFormat } from "../src/log_line.ts";

/** Default TCP port of the backup service. */
export const backupPortDefault = 8702;

function sizeFlag(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  try {
    const bytes = parseSize(text);
    if (bytes < 1) throw new RangeError(`Size "${text}" must be at least 1 byte`);
    return bytes;
  } catch (err) {
    throw new RangeError(`--${name}: ${(err as Error).message}`);
  }
}

/** The backup's flags, parsed and documented from this one table. */
const backupCommand = {
  usage: "deno task backup [flags]",
  about: "The backup service: journals the hosts' mirrored writes and applies them to the " +
    "secondary images, over HTTP and the binary host link.",
  flags: {
    port: {
      type: "string",
      value: "P",
      doc: "HTTP port, 0 to 65535; 0 picks a free one",
      fallback: `${backupPortDefault}`,
    },
    hostname: {
      type: "string",
      value: "H",
      doc: "address to bind (HTTP and the link's TCP port)",
      fallback: "127.0.0.1",
    },
    data: {
      type: "string",
      value: "DIR",
      doc: "secondary images at DIR/volumes/NAME.img, the journal at DIR/journal",
      fallback: "./data/backup",
    },
    "journal-bytes-max": {
      type: "string",
      value: "SIZE",
      doc: "bound of the journal, at least 1 byte, e.g. 512MiB; a full journal answers " +
        "writes 507 (the host tracks them instead)",
      fallback: sizeText(journalBytesMaxDefault),
    },
    "batch-bytes-max": {
      type: "string",
      value: "SIZE",
      doc: "largest batch body accepted (larger ones get 413), at least 1 byte",
      fallback: sizeText(backupBatchBytesMaxDefault),
    },
    ...logFormatFlagDoc,
    ...tokenFlagDocs,
    "link-port": {
      type: "string",
      value: "P",
      doc: "TCP port of the host link on --hostname, 0 to 65535; 0 picks a free one",
      fallback: `${linkPortDefault}`,
    },
    "link-socket": {
      type: "string",
      value: "PATH",
      doc: "also serve the host link on this unix socket (a stale file there is replaced)",
    },
  },
  notes: "Environment: TRACKMIRROR_TOKEN is the token when neither token flag is given; it " +
    "guards the HTTP routes and the link's HELLO.\n" +
    "Tests only: TRACKMIRROR_FAULT_FILE=PATH injects journal / secondary faults.\n" +
    "SIGTERM / SIGINT: stop accepting, finish the in-flight group, exit 0.",
} as const;

async function main(): Promise<void> {
  const flags = parseCommand(Deno.args, backupCommand);
  const port = parsePort(flags.port, backupPortDefault);
  const hostname = flags.hostname ?? "127.0.0.1";
  const dataDir = flags.data ?? "./data/backup";
  const journalBytesMax = sizeFlag(
    "journal-bytes-max",
    flags["journal-bytes-max"],
    journalBytesMaxDefault,
  );
  const batchBytesMax = sizeFlag(
    "batch-bytes-max",
    flags["batch-bytes-max"],
    backupBatchBytesMaxDefault,
  );
  const token = resolveToken(flags);
  setLogFormat(parseLogFormat(flags["log-format"]));

  const linkPort = parsePort(flags["link-port"], linkPortDefault);
  // Both ports are checked before the journal is opened: a second backup on the same ports must
  // fail before it touches (or replays) anything.
  checkPortFree(hostname, port, "--port");
  checkPortFree(hostname, linkPort, "--link-port");
  // The link server replaces whatever file is at --link-socket: make sure no live backup owns it.
  if (flags["link-socket"] !== undefined) {
    await claimSocketPath(flags["link-socket"], "--link-socket");
  }
  const faults = faultFileFromEnv();
  if (faults) {
    logLine("backup", "warn", `test-only disk faults from ${faultFileEnv}=${faults.path}`);
  }
  const backup = await openBackup({
    faults,
    dataDir,
    journalBytesMax,
    batchBytesMax,
    token,
    link: { hostname, port: linkPort, socketPath: flags["link-socket"] },
  }).catch((err) => {
    // The link server replaces a stale socket file before it listens, so an address in use
    // here is the link's TCP port (taken since the check above).
    throw naming(err, { address: `${hostname}:${linkPort}`, flag: "--link-port", value: linkPort });
  });
  logLine("backup", "info", `link listening on ${backup.link!.addresses.join(" and ")}`);
  const server = listenNaming(
    { address: `${hostname}:${port}`, flag: "--port", value: port },
    () =>
      Deno.serve({
        port,
        hostname,
        onListen: ({ hostname, port }) => {
          logLine(
            "backup",
            "info",
            `listening on http://${hostname}:${port} (version ${version}, data ${dataDir}, ` +
              `journal-bytes-max ${journalBytesMax})`,
          );
        },
      }, backup.app.fetch),
  );

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logLine("backup", "info", `${signal}: finishing in-flight batches`);
    processEvents.endFollowers();
    await server.shutdown();
    await backup.close();
    logLine("backup", "info", "stopped");
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGTERM", () => void stop("SIGTERM"));
  Deno.addSignalListener("SIGINT", () => void stop("SIGINT"));
  await server.finished;
}

if (import.meta.main) await runMain(main);
