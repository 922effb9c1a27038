/**
 * `deno task host`: the host agent. Flags (a contract):
 *   --port P (8703) --tracker URL[,URL...] --backup URL --volume NAME=PATH:SIZE (repeatable)
 * --nbd-port P (10809) --nbd-socket PATH, and more: --hostname, --host-id, --advertise-url, --region-bytes, --auto-resync, --takeover,
 * --ack, --backup-link, --link-ack-timeout-ms, --lease-ms, --probe-interval-ms-max, --no-fork
 * (benchmark baseline), --unstaged-resync, --token, --token-file, --help, --version, --mirror
 * (repeatable), --cycle-interval.
 * Test only: env TRACKMIRROR_FAULT_FILE (src/fault_file.ts) injects primary write faults.
 */
import { checkPortFree, claimSocketPath, listenNaming } from "../src/address_in_use.ts";
import { systemClock } from "../src/clock.ts";
import { exitOnHelpOrVersion } from "../src/command_help.ts";
import { logLine, processEvents } from "../src/events.ts";
import { parseLogFormat, setLogFormat } from "../src/log_line.ts";
import { faultFileEnv, faultFileFromEnv } from "../src/fault_file.ts";
import type { AckMode } from "../src/link_protocol.ts";
import { checkRegionBytes, isPowerOfTwo, regionBytesDefault } from "../src/extent.ts";
import { failoverTargetsMax } from "../src/failover.ts";
import {
  parseCount,
  parseFlags,
  parsePort,
  parseSizeFlag,
  parseUrl,
  parseUrlList,
  runMain,
} from "../src/flags.ts";
import { checkName, namePattern } from "../src/schemas.ts";
import { resolveToken, tokenFlagOptions } from "../src/token.ts";
import { BackupClient } from "../backup/client.ts";
import { TrackerClient, trackerProbeIntervalMsDefault } from "../tracker/client.ts";
import { createHostApp } from "./app.ts";
import { Metrics } from "../src/metrics.ts";
import { hostLatency, timedLinkFactory, timeTrackerMarks, UnackedWrites } from "./port_timing.ts";
import { HostAgent } from "./agent/host_agent.ts";
import {
  activityRegionsMaxDefault,
  activityUnitBytesDefault,
  predictRegionsDefault,
} from "./fork/activity_record.ts";
import { linkAckTimeoutMsDefault } from "./link/link_client.ts";
import { leaseMsDefault } from "./agent/tracker_lease.ts";
import { probeIntervalMsMaxDefault, probeIntervalMsMinDefault } from "./agent/component_status.ts";
import { nbdPortDefault, serveNbd } from "./nbd/server.ts";
import { parseVolumeSpec } from "./volume_spec.ts";
import { parseCycleInterval, parseMirrorFlags } from "./mirror_spec.ts";

const usage = `Usage: deno task host --volume NAME=PATH:SIZE [--volume ...] [options]
  --port P             HTTP port (default 8703)
  --hostname H         address to bind (default 127.0.0.1)
  --tracker URL[,URL...]  tracker service (default http://127.0.0.1:8701); several trackers over
                       one store (etcd; not one Deno KV file): calls go to the first that answers,
                       and move to the next on no answer, a timeout or a 5xx
  --backup URL         backup service (default http://127.0.0.1:8702)
  --volume SPEC        NAME=PATH:SIZE; created sparse when absent, with its missing parent
                       directories (SIZE e.g. 4096, 64MiB, 1GiB); repeatable
  --nbd-port P         NBD (TCP) port; export name = volume name, or VOLUME/TOKEN when a token is
                       set (default 10809; 0 picks one)
  --nbd-socket PATH    also serve NBD on this unix socket
  --host-id ID         this agent's name at the tracker (default host0)
  --advertise-url URL  where reconstruct reaches this agent (default http://HOSTNAME:PORT)
  --region-bytes N     tracking granularity, a power of two (default 64KiB)
  --auto-resync        resync dirty volumes whenever the backup comes back
  --takeover           take volume leases another host holds
  --predict-regions N  regions marked ahead of a cold write, dirty or activity (default ${predictRegionsDefault})
  --activity-regions-max N  bound of each volume's hot activity set (default ${activityRegionsMaxDefault};
                       0 keeps no activity marks: a host crash may then leave unmarked differences)
  --activity-unit-bytes N  granularity of activity marks, a power of two >= the region (default 4MiB)
  --resync-bytes-per-sec N  bound on resync copy rate, e.g. 100MiB (default unbounded); for a
                       checksum resync or verify, on the bytes compared: the bytes a job has
                       started by t seconds after its start never exceed N x t
  --unstaged-resync    copy resyncs straight into the secondary, without a cycle (before issue 10:
                       the secondary is a mix until the resync ends); for comparison only
  --backup-link ADDR   the backup's link: tcp://HOST:PORT or a unix socket path (default: what
                       the backup advertises at GET /v1/link, its unix socket preferred)
  --ack MODE           when a mirror write is acknowledged: durable (the backup's journal sync
                       covers it; default) or received (on receipt; seed 002's hardening notices)
  --link-ack-timeout-ms N  how long the link waits for the backup's ack before it gives the link
                       up and falls back to tracker marks (default ${linkAckTimeoutMsDefault})
  --lease-ms N         the volume lease asked of the tracker, renewed every third of it
                       (default ${leaseMsDefault}; 1000 .. 86400000)
  --probe-interval-ms-max N  longest wait between probes of an offline backup (default
                       ${probeIntervalMsMaxDefault}; the waits double from 250 ms up to it)
  --mirror MODE        how volumes are mirrored: journal (every write through the backup's
                       journal; default) or cycles (writes marked at the tracker, shipped every
                       --cycle-interval as one freeze-and-copy cycle); NAME=MODE for one volume;
                       repeatable
  --cycle-interval D   cycle mode: time between cycle starts, e.g. 500ms, 30s, 2m (default 30s;
                       100ms .. 24h)
  --no-fork            serve the primary directly, without mirroring (benchmark baseline only)
  --log-format F       log lines as text (time, level, service, message) or json (JSON lines, one
                       event each; default text)
  --token T            shared token: bearer token for this agent and its peers, the backup link's
                       HELLO, and NBD export names VOLUME/TOKEN (prefer --token-file or
                       TRACKMIRROR_TOKEN: a flag shows in ps)
  --token-file PATH    read the token from the first line of PATH
  --help               print this help and exit
  --version            print the version and exit
Environment (tests only): TRACKMIRROR_FAULT_FILE=PATH makes primary writes fail while PATH holds
  a line primary=enospc or primary=eio (see README, "Fault injection")`;

/** `--activity-unit-bytes`: a power of two, at least one region. */
function parseUnitBytes(text: string | undefined, regionBytes: number): number {
  if (text === undefined) return Math.max(regionBytes, activityUnitBytesDefault);
  const bytes = parseSizeFlag("activity-unit-bytes", text);
  if (!isPowerOfTwo(bytes) || bytes < regionBytes) {
    throw new RangeError(
      `--activity-unit-bytes "${text}" must be a power of two of at least the region size ${regionBytes}`,
    );
  }
  return bytes;
}

/** `--backup-link`: tcp://HOST:PORT or an absolute unix socket path. */
function parseLinkAddress(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  if (/^tcp:\/\/[^/:]+:\d{1,5}$/.test(text) || text.startsWith("/")) return text;
  throw new RangeError(
    `--backup-link "${text}" must be tcp://HOST:PORT or an absolute socket path`,
  );
}

/** `--ack`: durable (default) or received. */
function parseAck(text: string | undefined): AckMode {
  if (text === undefined) return "durable";
  if (text === "durable" || text === "received") return text;
  throw new RangeError(`--ack "${text}" must be durable or received`);
}

/** `--link-ack-timeout-ms`: a whole number of milliseconds, at least 1 (0 would fail every write). */
function parseLinkAckTimeoutMs(text: string | undefined): number {
  const ms = parseCount("link-ack-timeout-ms", text, linkAckTimeoutMsDefault);
  if (ms < 1) throw new RangeError(`--link-ack-timeout-ms "${text}" must be at least 1`);
  return ms;
}

/** `--lease-ms`: what the tracker accepts (1 s .. 1 day). */
function parseLeaseMs(text: string | undefined): number {
  const ms = parseCount("lease-ms", text, leaseMsDefault);
  if (ms < leaseMsMin || ms > leaseMsMax) {
    throw new RangeError(`--lease-ms "${text}" must be between ${leaseMsMin} and ${leaseMsMax}`);
  }
  return ms;
}

/** Bounds of `--lease-ms`: the tracker's registration schema refuses anything outside them. */
const leaseMsMin = 1000;
const leaseMsMax = 24 * 3600 * 1000;

/** `--probe-interval-ms-max`: at least the first probe wait (250 ms), so backoff stays ordered. */
function parseProbeIntervalMsMax(text: string | undefined): number {
  const ms = parseCount("probe-interval-ms-max", text, probeIntervalMsMaxDefault);
  if (ms < probeIntervalMsMinDefault) {
    throw new RangeError(
      `--probe-interval-ms-max "${text}" must be at least ${probeIntervalMsMinDefault}`,
    );
  }
  return ms;
}

async function main(): Promise<void> {
  exitOnHelpOrVersion(Deno.args, () => usage);
  const flags = parseFlags(Deno.args, {
    port: { type: "string" },
    hostname: { type: "string" },
    tracker: { type: "string" },
    backup: { type: "string" },
    volume: { type: "string", multiple: true },
    mirror: { type: "string", multiple: true },
    "cycle-interval": { type: "string" },
    "nbd-port": { type: "string" },
    "nbd-socket": { type: "string" },
    "host-id": { type: "string" },
    "advertise-url": { type: "string" },
    "region-bytes": { type: "string" },
    "auto-resync": { type: "boolean" },
    takeover: { type: "boolean" },
    "no-fork": { type: "boolean" },
    ack: { type: "string" },
    "backup-link": { type: "string" },
    "link-ack-timeout-ms": { type: "string" },
    "lease-ms": { type: "string" },
    "probe-interval-ms-max": { type: "string" },
    "resync-bytes-per-sec": { type: "string" },
    "unstaged-resync": { type: "boolean" },
    "predict-regions": { type: "string" },
    "activity-regions-max": { type: "string" },
    "activity-unit-bytes": { type: "string" },
    "log-format": { type: "string" },
    ...tokenFlagOptions,
    help: { type: "boolean" },
    version: { type: "boolean" },
  });
  const port = parsePort(flags.port, 8703);
  const nbdPort = parsePort(flags["nbd-port"], nbdPortDefault);
  const hostname = flags.hostname ?? "127.0.0.1";
  const trackerUrls = parseUrlList(
    "tracker",
    flags.tracker,
    "http://127.0.0.1:8701",
    failoverTargetsMax,
  );
  const backupUrl = parseUrl("backup", flags.backup, "http://127.0.0.1:8702");
  const hostId = checkName("Host", flags["host-id"] ?? "host0");
  const regionBytes = flags["region-bytes"]
    ? parseSizeFlag("region-bytes", flags["region-bytes"])
    : regionBytesDefault;
  checkRegionBytes(regionBytes);
  const specs = (flags.volume ?? []).map(parseVolumeSpec);
  if (specs.length === 0) {
    throw new RangeError(`At least one --volume NAME=PATH:SIZE is needed\n${usage}`);
  }
  const modes = parseMirrorFlags(flags.mirror, specs.map((v) => v.name));
  const volumes = specs.map((v) => ({ ...v, mirror: modes.get(v.name) }));
  const cycleIntervalMs = parseCycleInterval(flags["cycle-interval"]);
  const token = resolveToken(flags);
  setLogFormat(parseLogFormat(flags["log-format"]));
  const leaseMs = parseLeaseMs(flags["lease-ms"]);
  const probeIntervalMsMax = parseProbeIntervalMsMax(flags["probe-interval-ms-max"]);

  // Listen first (so a taken port fails before anything is touched, and port 0 is resolved for
  // the advertised URL); requests are answered 503 until the agent is ready.
  let handler: (req: Request) => Response | Promise<Response> = () =>
    Response.json({ error: { status: 503, message: "Host agent is starting" } }, { status: 503 });
  const http = listenNaming(
    { address: `${hostname}:${port}`, flag: "--port", value: port },
    () => Deno.serve({ hostname, port, onListen: () => {} }, (req) => handler(req)),
  );
  // Before the agent takes any lease: a second agent on the same NBD port stops here.
  checkPortFree(hostname, nbdPort, "--nbd-port");
  const advertiseUrl = parseUrl(
    "advertise-url",
    flags["advertise-url"],
    `http://${hostname}:${http.addr.port}`,
  );
  const faults = faultFileFromEnv();
  if (faults) {
    logLine("host", "warn", `test-only disk faults from ${faultFileEnv}=${faults.path}`);
  }
  // Tracking commands are on the write path while the backup is away: kept connections.
  const tracker = new TrackerClient(trackerUrls, { token, keptConnections: true });
  // The standbys are called only when the current tracker fails: probe them so the status says
  // whether a failover would find one.
  const trackerProbe = trackerUrls.length > 1
    ? setInterval(
      () => tracker.probeAll().catch((err) => logLine("host", "warn", `tracker probe: ${err}`)),
      trackerProbeIntervalMsDefault,
    )
    : undefined;
  // The tracker and link clients are timed for /metrics (port_timing.ts).
  const metrics = new Metrics();
  const latency = hostLatency(metrics);
  const unacked = new UnackedWrites();
  const agent = await HostAgent.open({
    faults,
    hostId,
    advertiseUrl,
    volumes,
    regionBytes,
    tracker: timeTrackerMarks(tracker, latency),
    backup: new BackupClient(backupUrl, { token, timeoutMs: 5000 }),
    clock: systemClock,
    forking: !flags["no-fork"],
    ack: parseAck(flags.ack),
    linkAddress: parseLinkAddress(flags["backup-link"]),
    linkFactory: timedLinkFactory(latency, unacked),
    linkAckTimeoutMs: parseLinkAckTimeoutMs(flags["link-ack-timeout-ms"]),
    linkToken: token,
    autoResync: flags["auto-resync"] ?? false,
    takeover: flags.takeover ?? false,
    leaseMs,
    probe: { probeIntervalMsMax },
    predictRegions: parseCount("predict-regions", flags["predict-regions"], predictRegionsDefault),
    activityRegionsMax: parseCount(
      "activity-regions-max",
      flags["activity-regions-max"],
      activityRegionsMaxDefault,
    ),
    activityUnitBytes: parseUnitBytes(flags["activity-unit-bytes"], regionBytes),
    cycleIntervalMs,
    resync: {
      bytesPerSecMax: flags["resync-bytes-per-sec"]
        ? parseSizeFlag("resync-bytes-per-sec", flags["resync-bytes-per-sec"])
        : 0,
      staged: !(flags["unstaged-resync"] ?? false),
    },
  });
  // The NBD port was checked before the agent opened; the socket is checked here (a file left by
  // a killed agent is replaced, one a live agent answers on is refused, naming --nbd-socket).
  if (flags["nbd-socket"] !== undefined) await claimSocketPath(flags["nbd-socket"], "--nbd-socket");
  const nbd = serveNbd({
    hostname,
    port: nbdPort,
    socketPath: flags["nbd-socket"],
    lookup: (name) => namePattern.test(name) ? agent.volume(name)?.device : undefined,
    listExports: () => agent.volumes.map((v) => v.name),
    dirtySource: (name) => agent.dirtySource(name),
    token,
  });
  handler = createHostApp(agent, { token, metrics, unacked }).fetch;
  const nbdExport = token === undefined ? "<volume>" : "<volume>/<token>";
  logLine(
    "host",
    "info",
    `${hostId}: HTTP on http://${hostname}:${http.addr.port}, ` +
      `NBD on nbd://${hostname}:${nbd.port}/${nbdExport}` +
      (nbd.socketPath ? ` and nbd+unix:///${nbdExport}?socket=${nbd.socketPath}` : "") +
      `, volumes ${
        volumes.map((v) => `${v.name} (${v.path}, ${v.mirror ?? "journal"})`).join(", ")
      }, ` +
      `tracker ${trackerUrls.join(",")}, backup ${backupUrl}`,
  );

  const stop = async () => {
    clearInterval(trackerProbe);
    processEvents.endFollowers();
    await nbd.close();
    await http.shutdown();
    await agent.close();
    tracker.close();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGTERM", stop);
  Deno.addSignalListener("SIGINT", stop);
  await http.finished;
}

if (import.meta.main) await runMain(main);
