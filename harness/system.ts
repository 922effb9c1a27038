/**
 * The whole system as real processes on free loopback ports, for integration tests: tracker,
 * backup and one host agent serving volume `vol0`. Every process started here is stopped by `stop`.
 * Optional TcpProxies sit between the host and the backup link, the tracker, or the backup's HTTP
 * API (each kept across restarts of the service behind it), so a test can fault one path alone.
 */
import { freePort, type ServiceProcess, startService } from "./service_process.ts";
import { TcpProxy } from "./tcp_proxy.ts";
import { runScript, sha256File } from "./tools.ts";

export interface System {
  dir: string;
  tracker: ServiceProcess;
  backup: ServiceProcess;
  host: ServiceProcess;
  /** The volume's NBD URI, for real block clients. */
  nbdUri: string;
  volume: string;
  sizeBytes: number;
  primaryPath: string;
  secondaryPath: string;
  /**
   * With `linkProxy`: the proxy the host's link goes through (to the backup's fixed link port,
   * kept across `restartBackup`), so a test can cut, hold or delay the link alone.
   */
  linkProxy?: TcpProxy;
  /** With `trackerProxy`: the proxy the host reaches the tracker through (kept across restarts). */
  trackerProxy?: TcpProxy;
  /** With `backupProxy`: the proxy the host reaches the backup's HTTP API through. */
  backupProxy?: TcpProxy;
  /** The tracker's KV file (its `-wal` and `-shm` files lie beside it). */
  kvPath: string;
  /** The host agent's flags (without `--port`), e.g. to start a second agent like it. */
  hostArgs: string[];
  /** The environment every service of the system was started with (`SystemOptions.env`). */
  env: Record<string, string>;
  /** Starts the backup again on its port and data dir (after a kill). */
  restartBackup(): Promise<void>;
  restartTracker(): Promise<void>;
  /** SIGKILLs the host agent (if running) and starts it again with the same flags and port. */
  restartHost(): Promise<void>;
  /** Waits until the host agent reports the backup online (mode "mirroring"). */
  waitMirroring(timeoutMs?: number): Promise<void>;
  /** Runs `deno task reconstruct` as a process; returns its exit code and output. */
  reconstruct(args?: string[]): Promise<{ code: number; output: string }>;
  /** Runs `deno task verify` as a process; returns its exit code and output. */
  verify(args?: string[]): Promise<{ code: number; output: string }>;
  /** POST /v1/flush on the backup. */
  flushBackup(): Promise<void>;
  sha256Primary(): Promise<string>;
  sha256Secondary(): Promise<string>;
  stop(): Promise<void>;
}

export interface SystemOptions {
  sizeBytes?: number;
  hostArgs?: string[];
  volume?: string;
  /**
   * Starts the backup with a fixed `--link-port` and a TcpProxy in front of it, and points the
   * host at the proxy (`--backup-link tcp://127.0.0.1:<proxy port>`).
   */
  linkProxy?: boolean;
  /** More flags for the backup (e.g. `--journal-bytes-max 1MiB`), kept across restarts. */
  backupArgs?: string[];
  /** Puts a TcpProxy between the host and the tracker (the host's `--tracker` is the proxy). */
  trackerProxy?: boolean;
  /** Puts a TcpProxy between the host and the backup's HTTP API (the host's `--backup`). */
  backupProxy?: boolean;
  /**
   * Environment of every service process, e.g. the test-only `TRACKMIRROR_FAULT_FILE`
   * (src/fault_file.ts), kept across restarts.
   */
  env?: Record<string, string>;
  /** Runs tracker, backup and host agent with `--cpu-prof`, each into `DIR/<service>` (benches). */
  cpuProfDir?: string;
}

export async function startSystem(opts: SystemOptions = {}): Promise<System> {
  const dir = await Deno.makeTempDir({ prefix: "trackmirror-it-" });
  const volume = opts.volume ?? "vol0";
  const sizeBytes = opts.sizeBytes ?? 64 * 1024 * 1024;
  const profile = (service: string) =>
    opts.cpuProfDir ? ["--cpu-prof", `--cpu-prof-dir=${opts.cpuProfDir}/${service}`] : undefined;
  const trackerPort = freePort();
  const backupPort = freePort();
  const kv = `${dir}/tracker.kv`;
  const backupDir = `${dir}/backup`;
  const primaryPath = `${dir}/primary/${volume}.img`;
  await Deno.mkdir(`${dir}/primary`, { recursive: true });
  const started: ServiceProcess[] = [];
  let hostArgs: string[] = [];
  const backupArgs = ["--data", backupDir, ...(opts.backupArgs ?? [])];
  const env = opts.env ?? {};
  const linkArgs: string[] = [];
  const sys = {} as System;
  if (opts.linkProxy) {
    const linkPort = freePort();
    backupArgs.push("--link-port", String(linkPort));
    sys.linkProxy = new TcpProxy({ hostname: "127.0.0.1", port: linkPort });
    linkArgs.push("--backup-link", `tcp://127.0.0.1:${sys.linkProxy.port}`);
  }
  try {
    sys.tracker = await startService("tracker/main.ts", ["--kv", kv], {
      port: trackerPort,
      env,
      denoFlags: profile("tracker"),
    });
    started.push(sys.tracker);
    sys.backup = await startService("backup/main.ts", backupArgs, {
      port: backupPort,
      env,
      denoFlags: profile("backup"),
    });
    started.push(sys.backup);
    if (opts.trackerProxy) {
      sys.trackerProxy = new TcpProxy({ hostname: "127.0.0.1", port: trackerPort });
    }
    if (opts.backupProxy) {
      sys.backupProxy = new TcpProxy({ hostname: "127.0.0.1", port: backupPort });
    }
    const nbdPort = freePort();
    sys.nbdUri = `nbd://127.0.0.1:${nbdPort}/${volume}`;
    hostArgs = [
      "--nbd-port",
      String(nbdPort),
      "--tracker",
      sys.trackerProxy ? `http://127.0.0.1:${sys.trackerProxy.port}` : sys.tracker.url,
      "--backup",
      sys.backupProxy ? `http://127.0.0.1:${sys.backupProxy.port}` : sys.backup.url,
      "--volume",
      `${volume}=${primaryPath}:${sizeBytes}`,
      ...linkArgs,
      ...(opts.hostArgs ?? []),
    ];
    sys.host = await startService("host/main.ts", hostArgs, { env, denoFlags: profile("host") });
    started.push(sys.host);
  } catch (err) {
    for (const p of started) await p.kill();
    await closeProxies(sys);
    await Deno.remove(dir, { recursive: true });
    throw err;
  }
  Object.assign(sys, {
    dir,
    kvPath: kv,
    hostArgs,
    env,
    volume,
    sizeBytes,
    primaryPath,
    secondaryPath: `${backupDir}/volumes/${volume}.img`,
    async restartBackup() {
      await sys.backup.kill();
      sys.backup = await startService("backup/main.ts", backupArgs, { port: backupPort, env });
    },
    async restartHost() {
      await sys.host.kill();
      sys.host = await startService("host/main.ts", hostArgs, { port: sys.host.port, env });
    },
    async restartTracker() {
      await sys.tracker.kill();
      sys.tracker = await startService("tracker/main.ts", ["--kv", kv], {
        port: trackerPort,
        env,
      });
    },
    async waitMirroring(timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        const status = await (await fetch(`${sys.host.url}/v1/status`)).json();
        if (status.mode === "mirroring") return;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`Host agent did not see the backup online within ${timeoutMs} ms`);
    },
    async reconstruct(args: string[] = []) {
      const out = await runScript("host/resync/reconstruct.ts", [
        "--tracker",
        sys.tracker.url,
        ...args,
      ]);
      return { code: out.code, output: out.stdout + out.stderr };
    },
    async verify(args: string[] = []) {
      const out = await runScript("host/resync/verify.ts", ["--tracker", sys.tracker.url, ...args]);
      return { code: out.code, output: out.stdout + out.stderr };
    },
    async flushBackup() {
      const res = await fetch(`${sys.backup.url}/v1/flush`, { method: "POST" });
      await res.body?.cancel();
      if (!res.ok) throw new Error(`Backup flush answered ${res.status}`);
    },
    sha256Primary: () => sha256File(primaryPath),
    sha256Secondary: () => sha256File(`${backupDir}/volumes/${volume}.img`),
    async stop() {
      await Promise.all([sys.host.stop(), sys.backup.stop(), sys.tracker.stop()]);
      await closeProxies(sys);
      await Deno.remove(dir, { recursive: true });
    },
  });
  return sys;
}

async function closeProxies(sys: System): Promise<void> {
  await sys.linkProxy?.close();
  await sys.trackerProxy?.close();
  await sys.backupProxy?.close();
}
