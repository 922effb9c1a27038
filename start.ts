/**
 * `deno task start`: the whole system on embedded defaults, one command: the tracker, the backup and
 * one host agent serving volume `vol0` (1 GiB), all on 127.0.0.1, everything under --data (./data).
 * It stands above tracker/, backup/ and host/ and only starts their `main.ts` as processes.
 * `--token T`, `--token-file PATH` or TRACKMIRROR_TOKEN guards all three with one token, handed to
 * them in their environment so it never shows in `ps`.
 *
 * It answers for its own children only: before anything starts it checks that every port is free
 * and that no process of an earlier start on the same --data lives (a second start fails naming
 * the port or the pid, and never reaches the first one's services); it takes a child as healthy
 * only when `/healthz` answers with that child's pid; it writes DATA/pids/{start,tracker,backup,
 * host}.pid so one service can be stopped exactly; and when a child dies it says which one and how,
 * and keeps the others running (Ctrl-C or SIGTERM stops them all).
 */
import { checkPortFree } from "./src/address_in_use.ts";
import { parseCommand, tokenFlagDocs } from "./src/command_help.ts";
import { parsePort, parseSizeFlag, runMain } from "./src/flags.ts";
import {
  exitText,
  pidFilePath,
  processRunning,
  readPidFile,
  removePidFile,
  writePidFile,
} from "./src/pid_files.ts";
import { resolveToken, tokenEnvName } from "./src/token.ts";
import { version } from "./src/version.ts";
import { emit, logLine } from "./src/events.ts";
import { logFormatFlagDoc, parseLogFormat, setLogFormat } from "./src/log_line.ts";

const root = new URL(".", import.meta.url).pathname;
const hostname = "127.0.0.1";

/** Bound on each child's start-up (until its /healthz answers). */
const healthyWaitMs = 30_000;
/** Interval between /healthz probes during start-up. */
const healthProbeIntervalMs = 100;

/** `start`'s flags, parsed and documented from this one table. */
const startCommand = {
  usage: "deno task start [flags]",
  about: "The whole system on one machine: the tracker, the backup and one host agent serving " +
    "volume vol0, all on 127.0.0.1, everything under --data. Pid files DATA/pids/NAME.pid name " +
    "each service (start, tracker, backup, host).",
  flags: {
    data: { type: "string", value: "DIR", doc: "where everything is kept", fallback: "./data" },
    "tracker-port": { type: "string", value: "P", doc: "tracker HTTP port", fallback: "8701" },
    "backup-port": { type: "string", value: "P", doc: "backup HTTP port", fallback: "8702" },
    "host-port": { type: "string", value: "P", doc: "host agent HTTP port", fallback: "8703" },
    "nbd-port": { type: "string", value: "P", doc: "host agent NBD port", fallback: "10809" },
    "link-port": {
      type: "string",
      value: "P",
      doc: "the backup's host link TCP port (the host uses the unix socket DIR/backup/link.sock)",
      fallback: "8704",
    },
    "volume-size": {
      type: "string",
      value: "SIZE",
      doc: "size of vol0 when its primary is created, e.g. 64MiB",
      fallback: "1GiB",
    },
    ...logFormatFlagDoc,
    ...tokenFlagDocs,
  },
  notes: "Ports are 1 to 65535 and must be free. Environment: TRACKMIRROR_TOKEN is the token " +
    "when neither token flag is given; it is handed to all three services in their environment.",
} as const;

/** The services start runs, in start order, with the script each one is. */
const services = [
  { name: "tracker", script: "tracker/main.ts", label: "tracker" },
  { name: "backup", script: "backup/main.ts", label: "backup" },
  { name: "host", script: "host/main.ts", label: "host agent" },
] as const;
type ServiceName = (typeof services)[number]["name"];

interface Child {
  name: ServiceName;
  label: string;
  script: string;
  args: string[];
  process: Deno.ChildProcess;
  /** Set once the process has exited. */
  status?: Deno.CommandStatus;
}

/** A start port: 1 to 65535 (start probes each by its fixed number, so 0 cannot work). */
function startPort(flag: string, text: string | undefined, fallback: number): number {
  const port = parsePort(text, fallback);
  if (port === 0) throw new RangeError(`--${flag} "0": start needs fixed ports, 1 to 65535`);
  return port;
}

/**
 * Refuses a --data whose earlier start or services still run: two starts on one data directory
 * would share (and one would remove) its sockets and pid files.
 */
async function checkDataFree(data: string): Promise<void> {
  const scripts = [{ name: "start", script: "start.ts" }, ...services];
  for (const { name, script } of scripts) {
    const pid = await readPidFile(data, name);
    if (pid !== undefined && await processRunning(pid, script)) {
      throw new Error(
        `--data "${data}" is in use: ${name} pid ${pid} (${pidFilePath(data, name)}) still ` +
          `runs; stop it (kill ${pid}) or pass another --data`,
      );
    }
  }
}

/**
 * Waits for `child`'s own /healthz: an answer from another pid is another instance's. Fails as
 * soon as any of `children` (this one or one started before it) has exited.
 */
async function waitHealthy(child: Child, url: string, children: Child[]): Promise<void> {
  const deadline = Date.now() + healthyWaitMs;
  let other: number | undefined;
  while (Date.now() < deadline) {
    const dead = children.find((c) => c.status);
    if (dead) {
      throw new Error(
        `${dead.label} (pid ${dead.process.pid}) ${exitText(dead.status!)} during start-up ` +
          `(see its output above)`,
      );
    }
    try {
      const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) });
      const body = res.ok ? await res.json() : (await res.body?.cancel(), undefined);
      if (body?.pid === child.process.pid) return;
      if (typeof body?.pid === "number") other = body.pid;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, healthProbeIntervalMs));
  }
  throw new Error(
    other === undefined
      ? `${child.label} did not answer ${url}/healthz within ${healthyWaitMs} ms`
      : `${url}/healthz is answered by pid ${other}, not by this start's ${child.label} ` +
        `(pid ${child.process.pid}): another instance holds the port`,
  );
}

async function main(): Promise<void> {
  const flags = parseCommand(Deno.args, startCommand);
  const token = resolveToken(flags);
  const logFormat = parseLogFormat(flags["log-format"]);
  setLogFormat(logFormat);
  // Handed to the children only when given, so the restart hint stays as short as it can.
  const logArgs = flags["log-format"] === undefined ? [] : ["--log-format", logFormat];
  const data = (flags.data ?? "./data").replace(/\/+$/, "");
  const trackerPort = startPort("tracker-port", flags["tracker-port"], 8701);
  const backupPort = startPort("backup-port", flags["backup-port"], 8702);
  const hostPort = startPort("host-port", flags["host-port"], 8703);
  const nbdPort = startPort("nbd-port", flags["nbd-port"], 10809);
  const linkPort = startPort("link-port", flags["link-port"], 8704);
  const volumeSize = flags["volume-size"] ?? "1GiB";
  // Checked here, not only by the host agent: a bad size must stop start before any child runs.
  if (parseSizeFlag("volume-size", volumeSize) <= 0) {
    throw new RangeError(`--volume-size "${volumeSize}" must be more than 0 bytes`);
  }
  const ports: [string, number][] = [
    ["--tracker-port", trackerPort],
    ["--backup-port", backupPort],
    ["--host-port", hostPort],
    ["--nbd-port", nbdPort],
    ["--link-port", linkPort],
  ];
  for (const [flag, port] of ports) {
    const same = ports.find(([f, p]) => p === port && f !== flag);
    if (same) throw new RangeError(`${flag} ${port} and ${same[0]} ${port} must differ`);
  }
  // Nothing is started, and nothing under --data touched, unless every port is free and no
  // earlier start on this data still runs.
  for (const [flag, port] of ports) checkPortFree(hostname, port, flag);
  await checkDataFree(data);
  await Deno.mkdir(`${data}/primary`, { recursive: true });
  await writePidFile(data, "start", Deno.pid);

  const tracker = `http://${hostname}:${trackerPort}`;
  const backup = `http://${hostname}:${backupPort}`;
  const host = `http://${hostname}:${hostPort}`;
  const argsOf: Record<ServiceName, string[]> = {
    tracker: ["--port", `${trackerPort}`, "--kv", `${data}/tracker.kv`, ...logArgs],
    backup: [
      "--port",
      `${backupPort}`,
      "--data",
      `${data}/backup`,
      // Host and backup share this machine: the host link goes over a unix socket.
      "--link-socket",
      `${data}/backup/link.sock`,
      "--link-port",
      `${linkPort}`,
      ...logArgs,
    ],
    host: [
      "--port",
      `${hostPort}`,
      "--tracker",
      tracker,
      "--backup",
      backup,
      "--volume",
      `vol0=${data}/primary/vol0.img:${volumeSize}`,
      "--nbd-port",
      `${nbdPort}`,
      "--nbd-socket",
      `${data}/nbd.sock`,
      ...logArgs,
    ],
  };
  const urlOf: Record<ServiceName, string> = { tracker, backup, host };

  const children: Child[] = [];
  let stopping = false;
  /** Set once every child is healthy: from then on a child's exit is reported as it happens. */
  let running = false;
  let allExited: () => void = () => {};
  const done = new Promise<void>((resolve) => (allExited = resolve));

  /** Says which child died and how; the others keep running. */
  const onExit = async (child: Child, status: Deno.CommandStatus) => {
    child.status = status;
    await removePidFile(data, child.name, child.process.pid);
    const alive = children.filter((c) => !c.status);
    if (running && !stopping) {
      const others = alive.length === 0
        ? "no service is left running"
        : `${alive.map((c) => c.label).join(" and ")} keep${alive.length === 1 ? "s" : ""} running`;
      emit({
        service: "start",
        level: "error",
        kind: "child.exit",
        message: `${child.label} (pid ${child.process.pid}) ${exitText(status)}; ` +
          `${others}. To start it again: deno task ${child.name} ${child.args.join(" ")}`,
        data: {
          child: child.name,
          pid: child.process.pid,
          code: status.code,
          signal: status.signal,
        },
      });
    }
    if (running && alive.length === 0) allExited();
  };

  const spawn = async (name: ServiceName): Promise<Child> => {
    const service = services.find((s) => s.name === name)!;
    const args = argsOf[name];
    const process = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-net",
        "--allow-read",
        "--allow-write",
        "--allow-env",
        // The host agent names its primary "HOSTNAME:/real/path" (its lease identity).
        "--allow-sys=hostname",
        `${root}${service.script}`,
        ...args,
      ],
      stdout: "inherit",
      stderr: "inherit",
      env: token === undefined ? {} : { [tokenEnvName]: token },
    }).spawn();
    const child: Child = { name, label: service.label, script: service.script, args, process };
    children.push(child);
    process.status.then((status) => onExit(child, status));
    await writePidFile(data, name, process.pid);
    return child;
  };

  const stopAll = async (code: number) => {
    if (stopping) return;
    stopping = true;
    for (const c of children.toReversed()) {
      try {
        c.process.kill("SIGTERM");
      } catch {
        // already gone
      }
    }
    await Promise.all(children.map((c) => c.process.status));
    // onExit removes each child's pid file once its status is in; wait for those too.
    for (const c of children) await removePidFile(data, c.name, c.process.pid);
    await removePidFile(data, "start", Deno.pid);
    Deno.exit(code);
  };
  Deno.addSignalListener("SIGINT", () => void stopAll(0));
  Deno.addSignalListener("SIGTERM", () => void stopAll(0));

  try {
    for (const { name } of services) await waitHealthy(await spawn(name), urlOf[name], children);
  } catch (err) {
    logLine("start", "error", `${(err as Error).message}`);
    await stopAll(1);
  }

  // The token itself is never printed: the examples read it from the environment.
  const auth = token === undefined ? "" : ` -H "Authorization: Bearer $${tokenEnvName}"`;
  const nbdExport = token === undefined ? "vol0" : `vol0/$${tokenEnvName}`;
  const pidOf = (name: ServiceName) => children.find((c) => c.name === name)!.process.pid;
  const banner = `
trackmirror is running (version ${version}; Ctrl-C stops everything)${
    token === undefined ? "" : `; every service needs the token (${tokenEnvName} below)`
  }:
  tracker     ${tracker}    KV ${data}/tracker.kv    pid ${pidOf("tracker")}
  backup      ${backup}    secondary images ${data}/backup/volumes/    pid ${pidOf("backup")}
  host agent  ${host}    volume vol0 (${volumeSize}) primary ${data}/primary/vol0.img    pid ${
    pidOf("host")
  }
  NBD         nbd://127.0.0.1:${nbdPort}/${nbdExport}    and nbd+unix:///${nbdExport}?socket=${data}/nbd.sock
  pid files   ${data}/pids/{start,tracker,backup,host}.pid
  dashboard   ${tracker}/    (open it in a browser${
    token === undefined ? "" : `; it asks for the token, or open ${tracker}/#token=…`
  })

Write to vol0:
  head -c 65536 /dev/urandom | curl -sS${auth} -X PUT --data-binary @- '${host}/v1/volumes/vol0/data?offset=0'
Or as a block device:  qemu-io -f raw -c 'write -P 0xab 0 1M' "nbd://127.0.0.1:${nbdPort}/${nbdExport}"
Status:     curl -sS${auth} ${host}/v1/status
Stop only the backup (an outage):  kill -9 $(cat ${pidFilePath(data, "backup")})
Reconstruct after a backup outage:  deno task reconstruct --tracker ${tracker}
`;
  // With --log-format json every line start prints is an event: the banner becomes one `log`
  // event (its first lines, on one line) so stdout stays JSON lines for a log collector.
  if (logFormat === "json") {
    logLine(
      "start",
      "info",
      `trackmirror is running (version ${version}): tracker ${tracker} (pid ${
        pidOf("tracker")
      }), backup ${backup} (pid ${pidOf("backup")}), host agent ${host} (pid ${
        pidOf("host")
      }), NBD nbd://127.0.0.1:${nbdPort}/${nbdExport}, pid files ${data}/pids`,
    );
  } else {
    console.log(banner);
  }
  running = true;
  // A child that died between its health check and here was not reported: report it now.
  for (const c of children) if (c.status) void onExit(c, c.status);
  await done;
  if (!stopping) {
    logLine("start", "error", "every service has stopped");
    await removePidFile(data, "start", Deno.pid);
    Deno.exit(1);
  }
}

if (import.meta.main) await runMain(main);
