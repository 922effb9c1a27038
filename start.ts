/**
 * `deno task start`: the whole system on embedded defaults, one command: the tracker, the backup and
 * one host agent serving volume `vol0` (1 GiB), all on 127.0.0.1, everything under --data (./data).
 * It stands above tracker/, backup/ and host/ and only starts their `main.ts` as processes.
 * `--token T`, `--token-file PATH` or TRACKMIRROR_TOKEN guards all three with one token, handed to
 * them in their environment so it never shows in `ps`.
 */
import { parseFlags, parsePort, runMain } from "./src/flags.ts";
import { resolveToken, tokenEnvName, tokenFlagOptions } from "./src/token.ts";

const root = new URL(".", import.meta.url).pathname;

interface Child {
  name: string;
  process: Deno.ChildProcess;
}

async function waitHealthy(name: string, url: string, child: Child, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  child.process.status.then(() => (exited = true));
  while (Date.now() < deadline) {
    if (exited) throw new Error(`${name} exited during start-up (see its output above)`);
    try {
      const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) });
      await res.body?.cancel();
      if (res.ok) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${name} did not answer ${url}/healthz within ${timeoutMs} ms`);
}

async function main(): Promise<void> {
  const flags = parseFlags(Deno.args, {
    data: { type: "string" },
    "tracker-port": { type: "string" },
    "backup-port": { type: "string" },
    "host-port": { type: "string" },
    "nbd-port": { type: "string" },
    "link-port": { type: "string" },
    "volume-size": { type: "string" },
    ...tokenFlagOptions,
  });
  const token = resolveToken(flags);
  const data = (flags.data ?? "./data").replace(/\/+$/, "");
  const trackerPort = parsePort(flags["tracker-port"], 8701);
  const backupPort = parsePort(flags["backup-port"], 8702);
  const hostPort = parsePort(flags["host-port"], 8703);
  const nbdPort = parsePort(flags["nbd-port"], 10809);
  const linkPort = parsePort(flags["link-port"], 8704);
  const volumeSize = flags["volume-size"] ?? "1GiB";
  await Deno.mkdir(`${data}/primary`, { recursive: true });

  const tracker = `http://127.0.0.1:${trackerPort}`;
  const backup = `http://127.0.0.1:${backupPort}`;
  const host = `http://127.0.0.1:${hostPort}`;
  const children: Child[] = [];
  const spawn = (name: string, script: string, args: string[]): Child => {
    const process = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-net",
        "--allow-read",
        "--allow-write",
        "--allow-env",
        `${root}${script}`,
        ...args,
      ],
      stdout: "inherit",
      stderr: "inherit",
      env: token === undefined ? {} : { [tokenEnvName]: token },
    }).spawn();
    const child = { name, process };
    children.push(child);
    return child;
  };
  let stopping = false;
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
    Deno.exit(code);
  };
  Deno.addSignalListener("SIGINT", () => void stopAll(0));
  Deno.addSignalListener("SIGTERM", () => void stopAll(0));

  try {
    const t = spawn("tracker", "tracker/main.ts", [
      "--port",
      `${trackerPort}`,
      "--kv",
      `${data}/tracker.kv`,
    ]);
    await waitHealthy("tracker", tracker, t);
    const b = spawn("backup", "backup/main.ts", [
      "--port",
      `${backupPort}`,
      "--data",
      `${data}/backup`,
      // Host and backup share this machine: the host link goes over a unix socket.
      "--link-socket",
      `${data}/backup/link.sock`,
      "--link-port",
      `${linkPort}`,
    ]);
    await waitHealthy("backup", backup, b);
    const h = spawn("host", "host/main.ts", [
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
    ]);
    await waitHealthy("host agent", host, h);
  } catch (err) {
    console.error(`start: ${(err as Error).message}`);
    await stopAll(1);
  }

  // The token itself is never printed: the examples read it from the environment.
  const auth = token === undefined ? "" : ` -H "Authorization: Bearer $${tokenEnvName}"`;
  const nbdExport = token === undefined ? "vol0" : `vol0/$${tokenEnvName}`;
  console.log(`
trackmirror is running (Ctrl-C stops everything)${
    token === undefined ? "" : `; every service needs the token (${tokenEnvName} below)`
  }:
  tracker     ${tracker}    KV ${data}/tracker.kv
  backup      ${backup}    secondary images ${data}/backup/volumes/
  host agent  ${host}    volume vol0 (${volumeSize}) primary ${data}/primary/vol0.img
  NBD         nbd://127.0.0.1:${nbdPort}/${nbdExport}    and nbd+unix:///${nbdExport}?socket=${data}/nbd.sock

Write to vol0:
  head -c 65536 /dev/urandom | curl -sS${auth} -X PUT --data-binary @- '${host}/v1/volumes/vol0/data?offset=0'
Or as a block device:  qemu-io -f raw -c 'write -P 0xab 0 1M' "nbd://127.0.0.1:${nbdPort}/${nbdExport}"
Status:     curl -sS${auth} ${host}/v1/status
Reconstruct after a backup outage:  deno task reconstruct --tracker ${tracker}
`);
  const first = await Promise.race(children.map(async (c) => ({ c, s: await c.process.status })));
  if (!stopping) {
    console.error(`start: ${first.c.name} exited with code ${first.s.code}; stopping the others`);
    await stopAll(1);
  }
}

if (import.meta.main) await runMain(main);
