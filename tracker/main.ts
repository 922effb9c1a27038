/**
 * Runs the tracker service.
 *
 *   deno task tracker [--port 8701] [--hostname 127.0.0.1] [--kv ./data/tracker.kv]
 *     [--token T | --token-file PATH] [--help] [--version]
 *
 * `--kv` is a file path (its directory is created) or an http(s) URL of a remote Deno KV reached
 * through KV Connect (e.g. a `denokv` server; its access token comes from DENO_KV_ACCESS_TOKEN).
 * The tracker must be the only process writing that KV. `--token`, `--token-file` or
 * TRACKMIRROR_TOKEN (src/token.ts) guards every route but /healthz and the dashboard's files
 * with a bearer token.
 * SIGTERM / SIGINT drain the commit queue, close the KV and exit 0.
 */
import { dirname } from "node:path";
import { systemClock } from "../src/clock.ts";
import { checkPortFree, listenNaming } from "../src/address_in_use.ts";
import { parseCommand, tokenFlagDocs } from "../src/command_help.ts";
import { parsePort, runMain } from "../src/flags.ts";
import { resolveToken } from "../src/token.ts";
import { version } from "../src/version.ts";
import { createTrackerApp } from "./service.ts";

/** Default port of the tracker. */
export const trackerPortDefault = 8701;
/** Default KV location. */
export const trackerKvDefault = "./data/tracker.kv";

/** The tracker's flags, parsed and documented from this one table. */
const trackerCommand = {
  usage: "deno task tracker [flags]",
  about: "The tracker: the dirty and activity marks of every volume, over Deno KV, and which " +
    "host owns each volume. It must be the only process writing its KV.",
  flags: {
    port: {
      type: "string",
      value: "P",
      doc: "HTTP port, 0 to 65535; 0 picks a free one",
      fallback: `${trackerPortDefault}`,
    },
    hostname: { type: "string", value: "H", doc: "address to bind", fallback: "127.0.0.1" },
    kv: {
      type: "string",
      value: "PATH_OR_URL",
      doc: "Deno KV file (its directory is created), :memory:, or an http(s) URL of a KV " +
        "Connect server (access token from DENO_KV_ACCESS_TOKEN)",
      fallback: trackerKvDefault,
    },
    ...tokenFlagDocs,
  },
  notes: "Environment: TRACKMIRROR_TOKEN is the token when neither token flag is given.\n" +
    "SIGTERM / SIGINT drain the commit queue, close the KV and exit 0.",
} as const;

async function main(): Promise<void> {
  const flags = parseCommand(Deno.args, trackerCommand);
  const port = parsePort(flags.port, trackerPortDefault);
  const hostname = flags.hostname ?? "127.0.0.1";
  const kvPath = flags.kv ?? trackerKvDefault;
  if (kvPath === "") throw new RangeError(`--kv "" must be a file path or an http(s) URL`);
  const token = resolveToken(flags);

  checkPortFree(hostname, port, "--port");
  const remote = /^https?:\/\//i.test(kvPath);
  if (!remote && kvPath !== ":memory:") await Deno.mkdir(dirname(kvPath), { recursive: true });
  const kv = await Deno.openKv(kvPath);
  const tracker = createTrackerApp({ kv, clock: systemClock, token });

  const server = listenNaming(
    { address: `${hostname}:${port}`, flag: "--port", value: port },
    () =>
      Deno.serve({
        port,
        hostname,
        onListen: (addr) => {
          console.log(
            `tracker ${version} listening on http://${addr.hostname}:${addr.port} (kv ${kvPath}${
              token ? ", bearer token required" : ""
            })`,
          );
        },
      }, tracker.app.fetch),
  );

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    tracker.endStreams();
    await server.shutdown();
    await tracker.close();
    kv.close();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGTERM", stop);
  Deno.addSignalListener("SIGINT", stop);
  await server.finished;
}

if (import.meta.main) await runMain(main);
