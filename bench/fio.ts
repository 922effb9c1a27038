/**
 * Runs fio's nbd engine against an NBD URI and reads its JSON report: IOPS, MB/s and completion
 * latency percentiles of the write side. One job, one connection; fio's default seeded random
 * sequence (randrepeat=1), so every target sees the same offsets.
 */
import { run } from "../harness/tools.ts";

/** One fio workload. */
export interface Workload {
  /** Short key used in result names, e.g. "4k_randwrite_qd1". */
  key: string;
  /** What a table shows. */
  label: string;
  rw: "randwrite" | "write";
  blockBytes: number;
  iodepth: number;
}

/** The three workloads of the NBD bench. */
export const workloads: readonly Workload[] = [
  {
    key: "4k_randwrite_qd1",
    label: "4 KiB randwrite qd1",
    rw: "randwrite",
    blockBytes: 4096,
    iodepth: 1,
  },
  {
    key: "4k_randwrite_qd32",
    label: "4 KiB randwrite qd32",
    rw: "randwrite",
    blockBytes: 4096,
    iodepth: 32,
  },
  {
    key: "1m_write_qd8",
    label: "1 MiB seq write qd8",
    rw: "write",
    blockBytes: 1 << 20,
    iodepth: 8,
  },
];

/** What one fio run measured (write side). */
export interface FioResult {
  iops: number;
  mbPerSec: number;
  /** Completion latency percentiles, microseconds. */
  p50Us: number;
  p99Us: number;
  /** Write I/Os fio counted after the ramp. */
  ios: number;
  /** fio's error code for the job (0 = none). */
  error: number;
}

export interface FioOptions {
  uri: string;
  workload: Workload;
  runtimeSec: number;
  rampSec: number;
  /** Where fio writes its JSON report (fio prints to stdout otherwise). */
  outputPath: string;
}

/** Bound on one fio run beyond its runtime and ramp, so a hung target cannot hang the bench. */
const fioSlackMs = 60_000;

/** Runs one fio job; throws with fio's output when it fails. */
export async function runFio(o: FioOptions): Promise<FioResult> {
  const w = o.workload;
  const args = [
    "--name=trackmirror",
    "--ioengine=nbd",
    `--uri=${o.uri}`,
    `--rw=${w.rw}`,
    `--bs=${w.blockBytes}`,
    `--iodepth=${w.iodepth}`,
    `--runtime=${o.runtimeSec}`,
    `--ramp_time=${o.rampSec}`,
    "--time_based",
    "--output-format=json",
    `--output=${o.outputPath}`,
  ];
  const out = await run("fio", args, { timeoutMs: (o.runtimeSec + o.rampSec) * 1000 + fioSlackMs });
  const text = () => out.stdout + out.stderr;
  if (out.code !== 0) {
    throw new Error(`fio ${w.key} against ${o.uri} exited with ${out.code}:\n${text()}`);
  }
  const report = JSON.parse(await Deno.readTextFile(o.outputPath));
  const job = report.jobs?.[0];
  if (!job?.write) throw new Error(`fio report ${o.outputPath} has no write results:\n${text()}`);
  const pct = job.write.clat_ns?.percentile ?? {};
  return {
    iops: job.write.iops,
    mbPerSec: job.write.bw_bytes / 1e6,
    p50Us: (pct["50.000000"] ?? NaN) / 1000,
    p99Us: (pct["99.000000"] ?? NaN) / 1000,
    ios: job.write.total_ios,
    error: job.error ?? 0,
  };
}
