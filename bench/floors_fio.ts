/**
 * fio for the floors bench (floors_bench.ts): renders a job file, runs it, and reads each job's
 * numbers from fio's JSON report. Parsing is strict: a field this bench relies on that is missing
 * or not a number throws with the job and field named, so a fio version that renames one fails
 * loudly instead of printing zeros (tests/bench_floors_fio.test.ts holds a captured fio-3.33
 * sample).
 */
import { run } from "../harness/tools.ts";

/** One job's numbers (its write side; `sync` when the job called fsync or fdatasync). */
export interface FioJobReport {
  writeIops: number;
  writeMBps: number;
  writeIos: number;
  /** The job's own runtime, ms (fio's `job_runtime`). */
  runtimeMs: number;
  /** fio's `usr_cpu` + `sys_cpu`: percent of one CPU over the job's runtime. */
  cpuPercent: number;
  /** (usr_cpu + sys_cpu) / 100 × runtime / writes: CPU µs the job spent per write. */
  cpuUsPerWrite: number;
  sync?: {
    count: number;
    perSec: number;
    /** Latency of the fsync / fdatasync call itself, µs. */
    p50Us: number;
    p99Us: number;
  };
}

/** What one fio run reported. */
export interface FioReport {
  version: string;
  jobs: Record<string, FioJobReport>;
}

/** Option values of one section of a job file; `true` writes a bare key (e.g. `time_based`). */
export type FioSection = Record<string, string | number | true>;

/** A job file: `[global]` then one section per job, in order. */
export function fioJobFile(global: FioSection, jobs: Record<string, FioSection>): string {
  const section = (name: string, opts: FioSection) =>
    [`[${name}]`, ...Object.entries(opts).map(([k, v]) => (v === true ? k : `${k}=${v}`))]
      .join("\n");
  return [section("global", global), ...Object.entries(jobs).map(([n, o]) => section(n, o))]
    .join("\n\n") + "\n";
}

function field(obj: unknown, path: string[], where: string): number {
  let v: unknown = obj;
  for (const key of path) v = (v as Record<string, unknown> | undefined)?.[key];
  if (typeof v !== "number" || !Number.isFinite(v)) {
    throw new Error(`${where}: field "${path.join(".")}" is missing or not a number (${v})`);
  }
  return v;
}

function parseJob(job: unknown, where: string): FioJobReport {
  const runtimeMs = field(job, ["job_runtime"], where);
  const writeIos = field(job, ["write", "total_ios"], where);
  const cpuPercent = field(job, ["usr_cpu"], where) + field(job, ["sys_cpu"], where);
  const report: FioJobReport = {
    writeIops: field(job, ["write", "iops"], where),
    writeMBps: field(job, ["write", "bw_bytes"], where) / 1e6,
    writeIos,
    runtimeMs,
    cpuPercent,
    cpuUsPerWrite: writeIos > 0 ? (cpuPercent / 100) * runtimeMs * 1000 / writeIos : NaN,
  };
  // fio 3.33 leaves `sync.total_ios` at 0 and counts the syncs in `sync.lat_ns.N`.
  const count = field(job, ["sync", "lat_ns", "N"], where);
  if (count > 0) {
    const pct = ["sync", "lat_ns", "percentile"];
    report.sync = {
      count,
      perSec: runtimeMs > 0 ? count / (runtimeMs / 1000) : NaN,
      p50Us: field(job, [...pct, "50.000000"], where) / 1000,
      p99Us: field(job, [...pct, "99.000000"], where) / 1000,
    };
  }
  return report;
}

/** Reads fio's JSON report (`--output-format=json`); jobs by name. */
export function parseFioReport(text: string, source = "fio report"): FioReport {
  let report: { "fio version"?: unknown; jobs?: unknown };
  try {
    report = JSON.parse(text);
  } catch (err) {
    throw new Error(`${source} is not JSON (${err}): ${text.slice(0, 200)}`);
  }
  if (!Array.isArray(report.jobs) || report.jobs.length === 0) {
    throw new Error(`${source} has no jobs`);
  }
  const jobs: Record<string, FioJobReport> = {};
  for (const job of report.jobs) {
    const name = (job as { jobname?: unknown }).jobname;
    if (typeof name !== "string") throw new Error(`${source}: a job has no "jobname"`);
    const error = field(job, ["error"], `${source} job "${name}"`);
    if (error !== 0) throw new Error(`${source} job "${name}" ended with error ${error}`);
    jobs[name] = parseJob(job, `${source} job "${name}"`);
  }
  return { version: String(report["fio version"] ?? "unknown"), jobs };
}

/** Bound on one fio run beyond its runtime, so a stuck disk cannot hang the bench. */
const fioSlackMs = 60_000;

/** Writes `jobFile` as `dir/name.fio`, runs it and returns its report; throws with fio's output. */
export async function runFioJobs(
  dir: string,
  name: string,
  jobFile: string,
  runtimeSec: number,
): Promise<FioReport> {
  const jobPath = `${dir}/${name}.fio`;
  const outPath = `${dir}/${name}.json`;
  await Deno.writeTextFile(jobPath, jobFile);
  const out = await run("fio", ["--output-format=json", `--output=${outPath}`, jobPath], {
    cwd: dir,
    timeoutMs: runtimeSec * 1000 + fioSlackMs,
  });
  if (out.code !== 0) {
    throw new Error(`fio ${name} exited with ${out.code}:\n${out.stdout}${out.stderr}`);
  }
  return parseFioReport(await Deno.readTextFile(outPath), `fio ${name} report`);
}
