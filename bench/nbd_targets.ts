/**
 * The NBD servers the NBD bench compares, each on a fresh sparse image in its own temp dir:
 *   nbdkit   — nbdkit's file plugin: the baseline
 *   no_fork  — the host agent with `--no-fork` (pass-through to the primary)
 *   online   — the host agent forking, backup online (mirroring)
 *   tracking — the host agent forking, backup killed with SIGKILL (tracking mode)
 * The host agent runs with the real tracker and backup processes on loopback. They are started here
 * with harness/service_process.ts rather than by harness/system.ts so the bench can pass Deno
 * flags (`--cpu-prof`) and give each process time to write its profile when stopped.
 */
import { freePort, type ServiceProcess, startService } from "../harness/service_process.ts";

export type TargetKey = "nbdkit" | "no_fork" | "online" | "received" | "tracking";

/** Labels in result tables, in the order the cases run. */
export const targetLabels: Record<TargetKey, string> = {
  nbdkit: "(a) nbdkit file",
  no_fork: "(b) host --no-fork",
  online: "(c) online, --ack durable",
  received: "(c') online, --ack received",
  tracking: "(d) forked, backup killed",
};

export const targetKeys = Object.keys(targetLabels) as TargetKey[];

/** The host agent's write counters (GET /v1/status), for telling which path writes took. */
export interface HostCounters {
  mode: string;
  viaBackup: number;
  viaTracker: number;
  failed: number;
  backupBatches: number;
  trackerCommands: number;
  trackerCacheHits: number;
  /** Activity-mark commands and retires (absent before activity marks existed). */
  activityCommands: number;
  activityRetires: number;
  /** CPU seconds (user + system) of the host agent and of the backup process so far. */
  hostCpuSec: number;
  backupCpuSec: number;
  /** The backup journal's fdatasyncs and records acknowledged so far (its /metrics). */
  backupSyncs: number;
  backupRecords: number;
  /** The host's tracking commands answered and their total seconds (its mark histogram). */
  markCount: number;
  markSec: number;
  /** The tracker's commit batches and their total seconds (its commit histogram). */
  commitCount: number;
  commitSec: number;
}

export interface NbdTarget {
  key: TargetKey;
  uri: string;
  /** Host counters; undefined for nbdkit. */
  counters(): Promise<HostCounters | undefined>;
  /** Called before each workload (the online case drains the backup's journal). */
  beforeWorkload(): Promise<void>;
  stop(): Promise<void>;
}

export interface TargetOptions {
  sizeBytes: number;
  /** When set, tracker, backup and host agent run with `--cpu-prof`, each into a subdir of it. */
  cpuProfDir?: string;
  /** Extra flags for the host agent (what-if runs, e.g. ["--activity-regions-max", "16384"]). */
  hostArgs?: string[];
}

const volume = "vol0";
/** Bound on a process becoming ready. */
const readyMs = 20_000;

/** Starts the target `key` in a new temp dir; `stop` removes the dir. */
export async function startTarget(key: TargetKey, opts: TargetOptions): Promise<NbdTarget> {
  const dir = await Deno.makeTempDir({ prefix: `nbd_bench_${key}_` });
  try {
    return key === "nbdkit" ? await startNbdkit(dir, opts) : await startHostSystem(key, dir, opts);
  } catch (err) {
    await Deno.remove(dir, { recursive: true }).catch(() => {}); // stop() may have removed it
    throw err;
  }
}

async function startNbdkit(dir: string, opts: TargetOptions): Promise<NbdTarget> {
  const image = `${dir}/${volume}.img`;
  await createSparse(image, opts.sizeBytes);
  const port = freePort();
  const child = new Deno.Command("nbdkit", {
    args: ["-f", "-p", String(port), "-i", "127.0.0.1", "file", image],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch {
      // already exited
    }
    await child.status;
    await stderr;
    await Deno.remove(dir, { recursive: true });
  };
  try {
    await waitListening(port, child.status);
  } catch (err) {
    await stop();
    throw new Error(`nbdkit did not start: ${(err as Error).message}\n${await stderr}`);
  }
  return {
    key: "nbdkit",
    uri: `nbd://127.0.0.1:${port}/`,
    counters: () => Promise.resolve(undefined),
    beforeWorkload: () => Promise.resolve(),
    stop,
  };
}

async function startHostSystem(
  key: TargetKey,
  dir: string,
  opts: TargetOptions,
): Promise<NbdTarget> {
  const started: ServiceProcess[] = [];
  const stopAll = async () => {
    for (const p of started.reverse()) await p.stop();
    await Deno.remove(dir, { recursive: true });
  };
  const spawn = async (name: string, script: string, args: string[]) => {
    const profDir = opts.cpuProfDir ? `${opts.cpuProfDir}/${name}` : undefined;
    if (profDir) await Deno.mkdir(profDir, { recursive: true });
    const p = await startService(script, args, {
      readyMs,
      denoFlags: profDir ? ["--cpu-prof", `--cpu-prof-dir=${profDir}`] : [],
      stopGraceMs: 10_000, // SIGTERM makes the services exit 0, which writes the CPU profile
    });
    started.push(p);
    return p;
  };
  try {
    const tracker = await spawn("tracker", "tracker/main.ts", ["--kv", `${dir}/tracker.kv`]);
    const backup = await spawn("backup", "backup/main.ts", ["--data", `${dir}/backup`]);
    await Deno.mkdir(`${dir}/primary`);
    const nbdPort = freePort();
    const host = await spawn("host", "host/main.ts", [
      "--nbd-port",
      String(nbdPort),
      "--tracker",
      tracker.url,
      "--backup",
      backup.url,
      "--volume",
      `${volume}=${dir}/primary/${volume}.img:${opts.sizeBytes}`,
      ...(key === "no_fork" ? ["--no-fork"] : []),
      ...(key === "received" ? ["--ack", "received"] : []),
      ...(opts.hostArgs ?? []),
    ]);
    let backupGone = false;
    const counters = async () => ({
      ...await hostCounters(host.url),
      hostCpuSec: await cpuSeconds(host.child.pid),
      ...await markTimings(host.url, tracker.url),
      ...(backupGone ? { backupCpuSec: 0, backupSyncs: 0, backupRecords: 0 } : {
        backupCpuSec: await cpuSeconds(backup.child.pid),
        ...await backupJournalCounters(backup.url),
      }),
    });
    if (key !== "no_fork") await waitMode(host.url, "mirroring");
    // The host notices on its first write after the kill (connection refused) and falls back to
    // the tracker; fio's ramp time covers that.
    if (key === "tracking") {
      await backup.kill();
      backupGone = true;
    }
    return {
      key,
      uri: `nbd://127.0.0.1:${nbdPort}/${volume}`,
      counters,
      async beforeWorkload() {
        if (key !== "online" && key !== "received") return;
        // Start each workload with an empty journal backlog, as the backup bench does.
        const res = await fetch(`${backup.url}/v1/flush`, { method: "POST" });
        await res.body?.cancel();
        if (!res.ok) throw new Error(`Backup flush answered ${res.status}`);
      },
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/** User + system CPU seconds of process `pid` (Linux /proc; clock ticks of 10 ms). */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // After the command name: state is field 3, utime 14 and stime 15 (1-based, see proc(5)).
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** The backup journal's fdatasyncs and acknowledged records, from its /metrics. */
async function backupJournalCounters(
  url: string,
): Promise<{ backupSyncs: number; backupRecords: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const value = (name: string) => Number(text.match(new RegExp(`^${name} (\\S+)$`, "m"))?.[1] ?? 0);
  return {
    backupSyncs: value("trackmirror_backup_journal_fsyncs_total"),
    backupRecords: value("trackmirror_backup_records_acknowledged_total"),
  };
}

/** Sum and count of the host's dirty-mark histogram and of the tracker's commit histogram. */
async function markTimings(
  hostUrl: string,
  trackerUrl: string,
): Promise<{ markCount: number; markSec: number; commitCount: number; commitSec: number }> {
  const [host, tracker] = await Promise.all(
    [hostUrl, trackerUrl].map(async (url) => await (await fetch(`${url}/metrics`)).text()),
  );
  const value = (text: string, series: string) => {
    const line = text.split("\n").find((l) => l.startsWith(`${series} `));
    return Number(line?.slice(series.length + 1) ?? 0);
  };
  const mark = "trackmirror_host_tracker_mark_seconds";
  const commit = "trackmirror_tracker_commit_seconds";
  return {
    markCount: value(host, `${mark}_count{kind="dirty"}`),
    markSec: value(host, `${mark}_sum{kind="dirty"}`),
    commitCount: value(tracker, `${commit}_count`),
    commitSec: value(tracker, `${commit}_sum`),
  };
}

async function hostCounters(
  url: string,
): Promise<
  Omit<
    HostCounters,
    | "hostCpuSec"
    | "backupCpuSec"
    | "backupSyncs"
    | "backupRecords"
    | "markCount"
    | "markSec"
    | "commitCount"
    | "commitSec"
  >
> {
  const status = await (await fetch(`${url}/v1/status`)).json();
  const v = status.volumes[0];
  return {
    mode: status.mode,
    viaBackup: v.writes?.viaBackup ?? 0,
    viaTracker: v.writes?.viaTracker ?? 0,
    failed: v.writes?.failed ?? 0,
    backupBatches: v.backupBatches,
    trackerCommands: v.trackerCommands,
    trackerCacheHits: v.trackerCacheHits,
    activityCommands: v.activity?.commandsSent ?? 0,
    activityRetires: v.activity?.retiresSent ?? 0,
  };
}

async function waitMode(url: string, mode: string): Promise<void> {
  const deadline = Date.now() + readyMs;
  while (Date.now() < deadline) {
    if ((await hostCounters(url)).mode === mode) return;
    await sleep(100);
  }
  throw new Error(`Host agent did not reach mode "${mode}" within ${readyMs} ms`);
}

async function createSparse(path: string, sizeBytes: number): Promise<void> {
  const f = await Deno.open(path, { write: true, create: true, truncate: true });
  try {
    await f.truncate(sizeBytes);
  } finally {
    f.close();
  }
}

/** Waits until something accepts TCP connections on `port`, or the process exits. */
async function waitListening(port: number, exited: Promise<unknown>): Promise<void> {
  let gone = false;
  exited.then(() => (gone = true));
  const deadline = Date.now() + readyMs;
  while (Date.now() < deadline && !gone) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return;
    } catch {
      await sleep(50);
    }
  }
  throw new Error(gone ? "process exited" : `nothing listens on port ${port}`);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
