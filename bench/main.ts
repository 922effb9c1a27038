/**
 * `deno task bench`: runs every bench in one run — tracker, tracker over etcd, backup, host HTTP,
 * NBD (fio against nbdkit and the host agent), prediction, checksum resync against a full copy,
 * the cost of a consistent (staged) resync, bytes shipped in journal vs cycle mode under a hot
 * spot, and the machine's own floors (fio and plain Deno: page-cache copy, fdatasync, disk
 * bandwidth, KV commit, loopback round trip) beside which the NBD targets are read — prints a
 * table per bench, and writes every result as JSON to
 * bench/results/latest.json (and to `--json PATH` when given). A bench that fails is reported and
 * the others still run; the exit code is then 1.
 *
 *   deno task bench [--only nbd,tracker] [--json PATH]
 *                   [--rounds N] [--runtime S] [--ramp S] [--size SIZE] [--targets LIST]
 *                   [--workloads LIST] [--host-args="FLAGS"] [--cpu-prof-dir DIR]
 *                   (the last eight go to the NBD bench)
 *
 * Timings are this command's output only; no test asserts on them.
 */
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { exitOnHelpOrVersion } from "../src/command_help.ts";
import { parseFlags, runMain } from "../src/flags.ts";
import { run } from "../harness/tools.ts";
import { benchBackup } from "./backup_bench.ts";
import { benchHostHttp } from "./host_http_bench.ts";
import { benchNbd, nbdFlagSpec, nbdOptionsFromFlags } from "./nbd_bench.ts";
import { formatNbd } from "./nbd_table.ts";
import { formatBackup, formatHostHttp, formatTracker } from "./tables.ts";
import { benchTracker } from "./tracker_bench.ts";
import { benchTrackerEtcd, formatTrackerEtcd } from "./tracker_etcd_bench.ts";
import { benchPrediction } from "./prediction_bench.ts";
import { formatPrediction } from "./prediction_table.ts";
import { benchChecksum, formatChecksum } from "./checksum_bench.ts";
import { benchStaging, formatStaging } from "./staging_bench.ts";
import { benchHotspot, formatHotspot } from "./hotspot_bench.ts";
import { benchFloors } from "./floors_bench.ts";
import { formatFloors } from "./floors_table.ts";

const usage = `Usage: deno task bench [--only LIST] [--json PATH] [NBD flags]
  --only LIST      benches to run, comma-separated: tracker, tracker-etcd, backup, host_http,
                   nbd, prediction, checksum, staging, hotspot, floors (default all)
  --json PATH      also write the results here (they always go to bench/results/latest.json)
  NBD bench:
  --rounds N       runs of every case; the order of targets is reversed every other round;
                   the table shows medians (default 3)
  --runtime S      measured seconds per fio run (default 5)
  --ramp S         fio ramp seconds before measuring (default 1)
  --size SIZE      image size (default 1GiB)
  --targets LIST   nbdkit,no_fork,online,tracking (default all)
  --workloads LIST 4k_randwrite_qd1,4k_randwrite_qd32,1m_write_qd8 (default all)
  --host-args=F    extra host agent flags for a what-if run (the = is needed), e.g.
                   --host-args="--activity-regions-max 16384"
  --cpu-prof-dir D profile tracker, backup and host agent of every case (--cpu-prof) into D
  --help           print this help and exit
  --version        print the version and exit
  Hot-spot bench (journal vs cycle mode), from the environment:
  TRACKMIRROR_HOTSPOT_SECONDS (60), _SIZE (256MiB), _IOPS (2000), _INTERVAL (10s), _ROUNDS (1),
  _BLOCK (4KiB), _REGION and _PREDICT (the host's --region-bytes and --predict-regions)`;

/** One bench: how to run it and how to show its result. */
interface Bench {
  run(): Promise<unknown>;
  format(result: unknown): string;
}

const resultsPath = fileURLToPath(new URL("./results/latest.json", import.meta.url));

async function git(args: string[]): Promise<string | undefined> {
  try {
    const out = await run("git", args, { cwd: dirname(dirname(resultsPath)) });
    return out.code === 0 ? out.stdout.trim() : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The 1, 5 and 15 minute load averages, read by `cat` (Deno.loadavg needs --allow-sys and reading
 * /proc needs --allow-all, neither of which the bench task grants); empty where there is no /proc.
 */
async function loadavg(): Promise<number[]> {
  try {
    const out = await run("cat", ["/proc/loadavg"]);
    if (out.code !== 0) return [];
    return out.stdout.split(" ").slice(0, 3).map(Number);
  } catch {
    return [];
  }
}

async function main(): Promise<void> {
  exitOnHelpOrVersion(Deno.args, () => usage);
  const flags = parseFlags(Deno.args, {
    only: { type: "string" },
    json: { type: "string" },
    help: { type: "boolean" },
    version: { type: "boolean" },
    ...nbdFlagSpec,
  });
  const nbdOptions = nbdOptionsFromFlags(flags);
  const benches: Record<string, Bench> = {
    tracker: {
      run: benchTracker,
      format: (r) => formatTracker(r as Record<string, number>),
    },
    "tracker-etcd": {
      run: benchTrackerEtcd,
      format: (r) => formatTrackerEtcd(r as Record<string, unknown>),
    },
    backup: {
      run: benchBackup,
      format: (r) => formatBackup(r as Record<string, number>),
    },
    host_http: {
      run: benchHostHttp,
      format: (r) => formatHostHttp(r as Record<string, number>),
    },
    nbd: {
      run: () => benchNbd(nbdOptions),
      format: (r) => formatNbd(r as Awaited<ReturnType<typeof benchNbd>>),
    },
    prediction: {
      run: () => benchPrediction({ predicts: [0, 16] }),
      format: (r) => formatPrediction(r as Record<string, unknown>),
    },
    checksum: {
      run: () => benchChecksum(),
      format: (r) => formatChecksum(r as Record<string, number>),
    },
    staging: {
      run: () => benchStaging(),
      format: (r) => formatStaging(r as Record<string, number>),
    },
    hotspot: {
      run: () => benchHotspot(),
      format: (r) => formatHotspot(r as Awaited<ReturnType<typeof benchHotspot>>),
    },
    floors: {
      run: () => benchFloors(),
      format: (r) => formatFloors(r as Awaited<ReturnType<typeof benchFloors>>),
    },
  };
  const names = flags.only === undefined
    ? Object.keys(benches)
    : flags.only.split(",").map((s) => s.trim()).filter(Boolean);
  for (const n of names) {
    if (!(n in benches)) {
      throw new RangeError(`--only: "${n}" is not one of ${Object.keys(benches).join(", ")}`);
    }
  }

  const report = {
    startedAt: new Date().toISOString(),
    finishedAt: "",
    commit: await git(["rev-parse", "HEAD"]),
    /** Files changed but not committed when the bench ran: results describe that tree. */
    uncommitted: (await git(["status", "--porcelain"]))?.split("\n").filter(Boolean) ?? [],
    deno: Deno.version,
    machine: {
      os: Deno.build.os,
      arch: Deno.build.arch,
      cpus: navigator.hardwareConcurrency,
      loadavgAtStart: await loadavg(),
      loadavgAtEnd: [] as number[],
    },
    benches: {} as Record<string, { seconds: number; result?: unknown; error?: string }>,
  };
  console.log(
    `trackmirror bench: ${names.join(", ")}; ${report.machine.cpus} CPUs, load average ` +
      `${report.machine.loadavgAtStart.map((x) => x.toFixed(2)).join(" ")}; commit ` +
      `${report.commit?.slice(0, 12) ?? "unknown"}` +
      (report.uncommitted.length ? ` + ${report.uncommitted.length} uncommitted changes` : ""),
  );
  let failed = false;
  for (const name of names) {
    console.error(`bench ${name}: running`);
    const start = performance.now();
    try {
      const result = await benches[name].run();
      // The NBD bench carries on past a failed fio run; the command still reports failure.
      if (((result as { failures?: unknown[] }).failures?.length ?? 0) > 0) failed = true;
      const seconds = (performance.now() - start) / 1000;
      report.benches[name] = { seconds: Math.round(seconds), result };
      console.log(`\n${benches[name].format(result)}\n(${Math.round(seconds)} s)`);
    } catch (err) {
      failed = true;
      const message = err instanceof Error ? err.message : String(err);
      report.benches[name] = {
        seconds: Math.round((performance.now() - start) / 1000),
        error: message,
      };
      console.log(`\n${name}: FAILED: ${message}`);
    }
  }
  report.finishedAt = new Date().toISOString();
  report.machine.loadavgAtEnd = await loadavg();
  const text = JSON.stringify(report, null, 2) + "\n";
  await Deno.mkdir(dirname(resultsPath), { recursive: true });
  await Deno.writeTextFile(resultsPath, text);
  const written = [resultsPath];
  if (flags.json) {
    await Deno.writeTextFile(flags.json, text);
    written.push(flags.json);
  }
  console.log(`\nresults: ${written.join(", ")}`);
  if (failed) Deno.exit(1);
}

if (import.meta.main) await runMain(main);
