/**
 * The host agent as a block device, measured by fio's nbd engine side by side with nbdkit's file
 * plugin on the same kind of image (sparse raw, same size, fresh for every case):
 *   (a) nbdkit file  (b) host --no-fork  (c) host forked, backup online  (d) host forked, backup
 *   killed (tracking mode)
 * for three workloads: 4 KiB random writes at queue depth 1 and 32, 1 MiB sequential writes at
 * queue depth 8. Reports IOPS, MB/s, p50 / p99 completion latency and, for (b)-(d), the ratio of
 * IOPS to (a) against the goals of issue 3. With `--rounds N` every case runs N times (the target
 * order reversed every other round) and the table shows medians and the IOPS spread.
 *
 *   deno run -A bench/nbd_bench.ts [--rounds 3] [--runtime 5] [--ramp 1] [--size 1GiB]
 *     [--targets nbdkit,no_fork,online,tracking] [--workloads 4k_randwrite_qd1,4k_randwrite_qd32,
 *     1m_write_qd8] [--host-args="--activity-regions-max 16384"] (what-if host agent flags; note the =)
 *     [--cpu-prof-dir DIR]  (profiles tracker, backup and host agent of each case)
 *
 * Order inside a case is fixed (qd1, qd32, 1 MiB) on one fresh system, so in (d) the qd1 run meets
 * a cold cache of marked regions and the later runs a warm one; the write-path counters printed
 * under the table say how many writes needed a tracker call.
 */
import { parseSize } from "../src/extent.ts";
import { parseFlags, runMain } from "../src/flags.ts";
import { type FioResult, runFio, type Workload, workloads } from "./fio.ts";
import { describePaths, formatNbd } from "./nbd_table.ts";
import type { NbdBenchResult, NbdFailure, NbdRow, WritePaths } from "./nbd_types.ts";
import {
  type HostCounters,
  startTarget,
  type TargetKey,
  targetKeys,
  targetLabels,
} from "./nbd_targets.ts";

export interface NbdBenchOptions {
  rounds?: number;
  runtimeSec?: number;
  rampSec?: number;
  sizeBytes?: number;
  targets?: TargetKey[];
  /** Workload keys to run (default all), e.g. ["4k_randwrite_qd32"]. */
  workloads?: string[];
  /** Extra host agent flags, for what-if runs (they apply to (b)-(d)). */
  hostArgs?: string[];
  /** Profile the host agent (`--cpu-prof`); one subdirectory per target. */
  cpuProfDir?: string;
  /** Progress lines (default: stderr). */
  log?: (line: string) => void;
}

/**
 * Defaults: three rounds because this loopback setup shares a few CPUs between fio, nbdkit or the
 * three services, and single runs vary by 10-20%; the median of three is steadier. Each fio run
 * is short so the whole bench takes about four minutes.
 */
export const roundsDefault = 3;
export const runtimeSecDefault = 5;
export const rampSecDefault = 1;

/** Issue 3's goals: IOPS of a case at least this share of nbdkit's for the same workload. */
export function goalOf(target: TargetKey, workload: string): number | undefined {
  if (target === "no_fork") return 0.8;
  return issue8Goals[target]?.[workload];
}

/** Issue 8's targets, as ratios to nbdkit: durable ("online"), received and tracking. */
const issue8Goals: Partial<Record<TargetKey, Record<string, number>>> = {
  online: { "4k_randwrite_qd32": 0.4, "4k_randwrite_qd1": 0.15, "1m_write_qd8": 0.25 },
  received: { "4k_randwrite_qd32": 0.55, "4k_randwrite_qd1": 0.35, "1m_write_qd8": 0.3 },
  tracking: { "4k_randwrite_qd32": 0.9, "4k_randwrite_qd1": 0.6, "1m_write_qd8": 0.9 },
};

/** Runs every case; see the file comment. */
export async function benchNbd(o: NbdBenchOptions = {}): Promise<NbdBenchResult> {
  const settings = {
    rounds: o.rounds ?? roundsDefault,
    runtimeSec: o.runtimeSec ?? runtimeSecDefault,
    rampSec: o.rampSec ?? rampSecDefault,
    sizeBytes: o.sizeBytes ?? 1024 * 1024 * 1024,
    workloads: o.workloads ? workloads.filter((w) => o.workloads!.includes(w.key)) : [...workloads],
    targets: o.targets ?? targetKeys,
    hostArgs: o.hostArgs ?? [],
  };
  const log = o.log ?? ((line: string) => console.error(line));
  const runs = new Map<string, NbdRow["runs"]>();
  const failures: NbdFailure[] = [];
  const reportDir = await Deno.makeTempDir({ prefix: "nbd_bench_fio_" });
  try {
    for (let round = 0; round < settings.rounds; round++) {
      const order = round % 2 === 0 ? settings.targets : [...settings.targets].reverse();
      for (const key of order) {
        const cpuProfDir = o.cpuProfDir && key !== "nbdkit"
          ? `${o.cpuProfDir}/${key}/round${round + 1}`
          : undefined;
        const target = await startTarget(key, {
          sizeBytes: settings.sizeBytes,
          cpuProfDir,
          hostArgs: settings.hostArgs,
        });
        try {
          for (const w of settings.workloads) {
            await target.beforeWorkload();
            const before = await target.counters();
            const startedMs = performance.now();
            let r: FioResult;
            try {
              r = await runFio({
                uri: target.uri,
                workload: w,
                runtimeSec: settings.runtimeSec,
                rampSec: settings.rampSec,
                outputPath: `${reportDir}/${key}_${w.key}_${round}.json`,
              });
            } catch (err) {
              // One failed case (e.g. writes refused with EIO) must not hide the others.
              const message = err instanceof Error ? err.message : String(err);
              failures.push({ target: key, workload: w.key, round: round + 1, message });
              log(`nbd: round ${round + 1} ${targetLabels[key]}, ${w.label}: FAILED: ${message}`);
              continue;
            }
            const after = await target.counters();
            const windowSec = (performance.now() - startedMs) / 1000;
            const paths = before && after ? pathsBetween(before, after, windowSec) : undefined;
            const id = `${key}/${w.key}`;
            if (!runs.has(id)) runs.set(id, []);
            runs.get(id)!.push({ ...r, paths });
            log(
              `nbd: round ${round + 1}/${settings.rounds} ${targetLabels[key]}, ${w.label}: ` +
                `${Math.round(r.iops)} IOPS` + (paths ? `, ${describePaths(paths)}` : ""),
            );
          }
        } finally {
          await target.stop();
        }
      }
    }
  } finally {
    await Deno.remove(reportDir, { recursive: true });
  }
  return { settings, rows: summarize(settings.targets, settings.workloads, runs), failures };
}

function pathsBetween(a: HostCounters, b: HostCounters, windowSec: number): WritePaths {
  return {
    windowSec,
    viaBackup: b.viaBackup - a.viaBackup,
    viaTracker: b.viaTracker - a.viaTracker,
    failed: b.failed - a.failed,
    backupBatches: b.backupBatches - a.backupBatches,
    trackerCommands: b.trackerCommands - a.trackerCommands,
    trackerCacheHits: b.trackerCacheHits - a.trackerCacheHits,
    activityCommands: b.activityCommands - a.activityCommands,
    activityRetires: b.activityRetires - a.activityRetires,
    modeAfter: b.mode,
    hostCpuSec: b.hostCpuSec - a.hostCpuSec,
    backupCpuSec: b.backupCpuSec - a.backupCpuSec,
    backupSyncs: b.backupSyncs - a.backupSyncs,
    backupRecords: b.backupRecords - a.backupRecords,
    markCount: b.markCount - a.markCount,
    markSec: b.markSec - a.markSec,
    commitCount: b.commitCount - a.commitCount,
    commitSec: b.commitSec - a.commitSec,
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

function summarize(
  targets: TargetKey[],
  ws: Workload[],
  runs: Map<string, NbdRow["runs"]>,
): NbdRow[] {
  const rows: NbdRow[] = [];
  for (const w of ws) {
    const base = runs.get(`nbdkit/${w.key}`);
    const baseIops = base ? median(base.map((r) => r.iops)) : undefined;
    for (const target of targets) {
      const rs = runs.get(`${target}/${w.key}`) ?? [];
      if (rs.length === 0) continue;
      const iops = median(rs.map((r) => r.iops));
      const row: NbdRow = {
        target,
        workload: w.key,
        iops,
        mbPerSec: median(rs.map((r) => r.mbPerSec)),
        p50Us: median(rs.map((r) => r.p50Us)),
        p99Us: median(rs.map((r) => r.p99Us)),
        iopsMin: Math.min(...rs.map((r) => r.iops)),
        iopsMax: Math.max(...rs.map((r) => r.iops)),
        runs: rs,
      };
      if (target !== "nbdkit" && baseIops) {
        row.ratio = iops / baseIops;
        row.goal = goalOf(target, w.key);
        if (row.goal !== undefined) row.met = row.ratio >= row.goal;
      }
      rows.push(row);
    }
  }
  return rows;
}

function parseTargets(text: string | undefined): TargetKey[] | undefined {
  if (text === undefined) return undefined;
  const keys = text.split(",").map((t) => t.trim()).filter(Boolean);
  for (const k of keys) {
    if (!targetKeys.includes(k as TargetKey)) {
      throw new RangeError(`--targets: "${k}" is not one of ${targetKeys.join(", ")}`);
    }
  }
  return keys as TargetKey[];
}

function parseWorkloads(text: string | undefined): string[] | undefined {
  if (text === undefined) return undefined;
  const keys = text.split(",").map((t) => t.trim()).filter(Boolean);
  for (const k of keys) {
    if (!workloads.some((w) => w.key === k)) {
      throw new RangeError(
        `--workloads: "${k}" is not one of ${workloads.map((w) => w.key).join(", ")}`,
      );
    }
  }
  return keys;
}

function positive(name: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) {
    throw new RangeError(`--${name} "${text}" must be a whole number >= 1`);
  }
  return n;
}

/** Options from command-line flags (shared with bench/main.ts). */
export function nbdOptionsFromFlags(flags: {
  rounds?: string;
  runtime?: string;
  ramp?: string;
  size?: string;
  targets?: string;
  workloads?: string;
  "host-args"?: string;
  "cpu-prof-dir"?: string;
}): NbdBenchOptions {
  const ramp = flags.ramp === undefined ? undefined : Number(flags.ramp);
  if (ramp !== undefined && !(Number.isInteger(ramp) && ramp >= 0)) {
    throw new RangeError(`--ramp "${flags.ramp}" must be a whole number of seconds >= 0`);
  }
  return {
    rounds: positive("rounds", flags.rounds),
    runtimeSec: positive("runtime", flags.runtime),
    rampSec: ramp,
    sizeBytes: flags.size === undefined ? undefined : parseSize(flags.size),
    targets: parseTargets(flags.targets),
    workloads: parseWorkloads(flags.workloads),
    hostArgs: flags["host-args"]?.split(/\s+/).filter(Boolean),
    cpuProfDir: flags["cpu-prof-dir"],
  };
}

/** Flags nbdOptionsFromFlags reads. */
export const nbdFlagSpec = {
  rounds: { type: "string" },
  runtime: { type: "string" },
  ramp: { type: "string" },
  size: { type: "string" },
  targets: { type: "string" },
  workloads: { type: "string" },
  "host-args": { type: "string" },
  "cpu-prof-dir": { type: "string" },
} as const;

if (import.meta.main) {
  await runMain(async () => {
    const flags = parseFlags(Deno.args, nbdFlagSpec);
    console.log(formatNbd(await benchNbd(nbdOptionsFromFlags(flags))));
  });
}
