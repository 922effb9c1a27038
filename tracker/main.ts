/**
 * Runs the tracker service.
 *
 *   deno task tracker [--port 8701] [--hostname 127.0.0.1] [--kv ./data/tracker.kv]
 *     [--token T | --token-file PATH] [--help] [--version]
 *
 * `--kv` is a file path (its directory is created) or an http(s) URL of a remote Deno KV reached
 * through KV Connect (e.g. a `denokv` server; its access token comes from DENO_KV_ACCESS_TOKEN);
 * the tracker must be the only process writing that KV. Or it is an etcd cluster,
 * `etcd://HOST:PORT[,HOST:PORT...][/NAMESPACE]`, which any number of trackers may share
 * (tracker/store/etcd_store.ts). Any other scheme exits 2. `--token`, `--token-file` or
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
import { logLine, processEvents } from "../src/events.ts";
import { logFormatFlagDoc, parseLogFormat, setLogFormat } from "../src/log_line.ts";
import { createTrackerApp, type TrackerAppOptions } from "./service.ts";
import { EtcdClient } from "./store/etcd_client.ts";
import { EtcdStore, etcdTraits } from "./store/etcd_store.ts";
import { parseKvTarget } from "./store/kv_target.ts";
import { etcdStoreCheck, kvStoreCheck } from "./store/store_probe.ts";
import type { StoreTraits, TrackerStore } from "./store/tracker_store.ts";

/** Default port of the tracker. */
export const trackerPortDefault = 8701;
/** Default KV location. */
export const trackerKvDefault = "./data/tracker.kv";

/** The tracker's flags, parsed and documented from this one table. */
const trackerCommand = {
  usage: "deno task tracker [flags]",
  about: "The tracker: the dirty and activity marks of every volume, over Deno KV or etcd, and " +
    "which host owns each volume. It must be the only process writing a Deno KV; any number of " +
    "trackers may share one etcd cluster.",
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
      doc: "Deno KV file (its directory is created), :memory:, an http(s) URL of a KV " +
        "Connect server (access token from DENO_KV_ACCESS_TOKEN), or an etcd cluster " +
        "etcd://HOST:PORT[,HOST:PORT...][/NAMESPACE]",
      fallback: trackerKvDefault,
    },
    ...logFormatFlagDoc,
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
  const target = parseKvTarget(kvPath, "--kv");
  const token = resolveToken(flags);
  setLogFormat(parseLogFormat(flags["log-format"]));

  checkPortFree(hostname, port, "--port");
  let kv: TrackerStore;
  let traits: StoreTraits | undefined;
  let closeKv = () => {};
  let storeProbe: TrackerAppOptions["storeProbe"];
  if (target.kind === "etcd") {
    const client = new EtcdClient(target.endpoints);
    kv = new EtcdStore(client, target.namespace);
    traits = etcdTraits;
    storeProbe = { kind: "etcd", check: etcdStoreCheck(client, target.namespace) };
  } else {
    if (!target.remote && kvPath !== ":memory:") {
      await Deno.mkdir(dirname(kvPath), { recursive: true });
    }
    const denoKv = await Deno.openKv(kvPath);
    kv = denoKv;
    closeKv = () => denoKv.close();
    storeProbe = { kind: "kv", check: kvStoreCheck(denoKv) };
  }
  const tracker = createTrackerApp({ kv, traits, clock: systemClock, token, storeProbe });

  const server = listenNaming(
    { address: `${hostname}:${port}`, flag: "--port", value: port },
    () =>
      Deno.serve({
        port,
        hostname,
        onListen: (addr) => {
          logLine(
            "tracker",
            "info",
            `listening on http://${addr.hostname}:${addr.port} (version ${version}, kv ${kvPath}${
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
    processEvents.endFollowers();
    await server.shutdown();
    await tracker.close();
    closeKv();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGTERM", stop);
  Deno.addSignalListener("SIGINT", stop);
  await server.finished;
}

if (import.meta.main) await runMain(main);
