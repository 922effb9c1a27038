/**
 * fio runs for the prediction bench: 4 KiB writes through fio's nbd engine over the first
 * `areaBytes` of a volume, with fio's write log kept, so the bench knows exactly which blocks and
 * which regions were written — what an ideal tracker would have had to mark. bench/fio.ts runs
 * fixed workloads without a log or a write area; this adds both, and the hot-spot distribution.
 *
 * Capacity of the log check: one bit a 4 KiB block and one a region, so a 64 GiB area costs
 * 2 MiB + 128 KiB of bitmaps; the log itself is about 40 B a write (~15 MB for 5 s at 75k IOPS).
 */
import assert from "node:assert/strict";
import { run } from "../harness/tools.ts";

export type PredictionWorkloadKey = "seq" | "random" | "hotspot";

/** One 4 KiB write workload. */
export interface PredictionWorkload {
  key: PredictionWorkloadKey;
  label: string;
  rw: "write" | "randwrite";
  /** fio's `--random_distribution`, when not uniform. */
  distribution?: string;
}

export const predictionWorkloads: readonly PredictionWorkload[] = [
  { key: "seq", label: "sequential", rw: "write" },
  { key: "random", label: "random", rw: "randwrite" },
  // 80% of the writes land in the first 20% of the area, the rest in the other 80%.
  { key: "hotspot", label: "hot spot 80/20", rw: "randwrite", distribution: "zoned:80/20:20/80" },
];

/** Every write of the bench is one 4 KiB block. */
export const blockBytes = 4096;

export interface LoggedFioOptions {
  uri: string;
  workload: PredictionWorkload;
  /** fio writes inside [0, areaBytes) only (`--size`). */
  areaBytes: number;
  /** Region size the distinct-region count uses (the tracker's). */
  regionBytes: number;
  iodepth: number;
  runtimeSec: number;
  /** Where fio's JSON report and write log go. */
  dir: string;
}

/** What one logged fio run measured. */
export interface LoggedFioResult {
  iops: number;
  /** Write I/Os fio reports. */
  ios: number;
  /** Writes in fio's log (should equal `ios`) and their bytes. */
  loggedWrites: number;
  bytesWritten: number;
  /** Bytes of the distinct 4 KiB blocks written. */
  distinctBytes: number;
  /** Distinct regions written: the fewest a tracker could mark. */
  distinctRegions: number;
  /** bytesWritten / areaBytes: above 1, a sequential run wrapped around. */
  passes: number;
  p50Us: number;
  p99Us: number;
}

/** Bound on one fio run beyond its runtime, so a hung target cannot hang the bench. */
const fioSlackMs = 60_000;

/** Runs one fio job with a write log; throws with fio's output when it fails. */
export async function runLoggedFio(o: LoggedFioOptions): Promise<LoggedFioResult> {
  const w = o.workload;
  const report = `${o.dir}/fio_${w.key}.json`;
  const iolog = `${o.dir}/fio_${w.key}.iolog`;
  const args = [
    "--name=prediction",
    "--ioengine=nbd",
    `--uri=${o.uri}`,
    `--rw=${w.rw}`,
    `--bs=${blockBytes}`,
    `--iodepth=${o.iodepth}`,
    `--size=${o.areaBytes}`,
    `--runtime=${o.runtimeSec}`,
    "--time_based",
    `--write_iolog=${iolog}`,
    "--output-format=json",
    `--output=${report}`,
    ...(w.distribution ? [`--random_distribution=${w.distribution}`] : []),
  ];
  const out = await run("fio", args, { timeoutMs: o.runtimeSec * 1000 + fioSlackMs });
  const text = () => out.stdout + out.stderr;
  if (out.code !== 0) {
    throw new Error(`fio ${w.key} against ${o.uri} exited with ${out.code}:\n${text()}`);
  }
  const job = JSON.parse(await Deno.readTextFile(report)).jobs?.[0];
  if (!job?.write) throw new Error(`fio report ${report} has no write results:\n${text()}`);
  if (job.error) throw new Error(`fio ${w.key} against ${o.uri} reported error ${job.error}`);
  const pct = job.write.clat_ns?.percentile ?? {};
  const written = await distinctWrites(iolog, o.areaBytes, o.regionBytes);
  await Deno.remove(iolog);
  return {
    iops: job.write.iops,
    ios: job.write.total_ios,
    ...written,
    passes: written.bytesWritten / o.areaBytes,
    p50Us: (pct["50.000000"] ?? NaN) / 1000,
    p99Us: (pct["99.000000"] ?? NaN) / 1000,
  };
}

/** Reads a fio write log (version 2 or 3) and counts distinct blocks and regions written. */
async function distinctWrites(
  path: string,
  areaBytes: number,
  regionBytes: number,
): Promise<
  { loggedWrites: number; bytesWritten: number; distinctBytes: number; distinctRegions: number }
> {
  const blocks = new Bitset(Math.ceil(areaBytes / blockBytes));
  const regions = new Bitset(Math.ceil(areaBytes / regionBytes));
  let loggedWrites = 0;
  let bytesWritten = 0;
  for (const line of (await Deno.readTextFile(path)).split("\n")) {
    // v2: "FILE write OFFSET LENGTH"; v3 puts a time in front.
    const parts = line.trim().split(/\s+/);
    const at = parts.indexOf("write");
    if (at < 0) continue;
    const offset = Number(parts[at + 1]);
    const length = Number(parts[at + 2]);
    assert(
      offset % blockBytes === 0 && offset + length <= areaBytes,
      `fio log ${path}: write ${offset}+${length} is not block-aligned inside ${areaBytes} bytes`,
    );
    loggedWrites++;
    bytesWritten += length;
    for (let b = offset / blockBytes; b < Math.ceil((offset + length) / blockBytes); b++) {
      blocks.add(b);
    }
    const lastRegion = Math.floor((offset + length - 1) / regionBytes);
    for (let r = Math.floor(offset / regionBytes); r <= lastRegion; r++) regions.add(r);
  }
  return {
    loggedWrites,
    bytesWritten,
    distinctBytes: blocks.size * blockBytes,
    distinctRegions: regions.size,
  };
}

/** A fixed-size set of small integers, counting its members. */
class Bitset {
  readonly #bits: Uint8Array;
  size = 0;
  constructor(n: number) {
    this.#bits = new Uint8Array(Math.ceil(n / 8));
  }
  add(i: number): void {
    const mask = 1 << (i & 7);
    if (this.#bits[i >> 3] & mask) return;
    this.#bits[i >> 3] |= mask;
    this.size++;
  }
}
