/**
 * What look-ahead prediction (`--predict-regions N`) buys and costs, measured through NBD with fio:
 * 4 KiB writes at queue depth 32 — sequential, uniform random, hot spot (80% of writes to 20% of
 * the volume) — with the backup offline (tracking mode: dirty marks) and online (activity marks),
 * for each N. Per case:
 *   - tracker calls per 1000 writes: mark commands (tracking or activity) and activity retires;
 *   - marked bytes (dirty bytes offline, activity bytes online, at the end of the run) over the
 *     distinct bytes fio wrote, taken from fio's write log — the resync amplification; and over
 *     the distinct regions' bytes, the fewest a tracker with 64 KiB regions could mark;
 *   - IOPS and its ratio to nbdkit's file plugin on the same workload and the same kind of image.
 * Goals (issue 4): sequential amplification ≤ 1.1; tracking mode with prediction ≥ 0.9 of nbdkit.
 *
 * Random writes over a volume a short run can fill with look-ahead marks hide prediction's cost
 * (marks saturate) and flatter its call savings (later writes land in predicted regions), so
 * random and hot spot run offline a second time on a much larger sparse volume (`largeSizeBytes`).
 *
 * Every case runs on a fresh system (harness/system.ts), so counters and marks start at zero.
 * Offline cases kill the backup with SIGKILL and make the host notice with one 4 KiB write at the
 * volume's end; fio writes only below `tailBytes` from the end, so that write's mark and fio's
 * (with look-ahead) never share a region, and every count is a delta around the fio run.
 *
 *   deno run -A bench/prediction_bench.ts [--predict 0,4,16,64] [--runtime 5] [--iodepth 32]
 *     [--size 16GiB] [--large-size 256GiB (0: skip)] [--workloads seq,random,hotspot]
 *     [--modes offline,online] [--json PATH]
 */
import { HostClient } from "../host/client.ts";
import { parseSize, regionBytesDefault } from "../src/extent.ts";
import { parseFlags, runMain } from "../src/flags.ts";
import { startSystem, type System } from "../harness/system.ts";
import { startTarget } from "./nbd_targets.ts";
import {
  blockBytes,
  type LoggedFioResult,
  type PredictionWorkload,
  type PredictionWorkloadKey,
  predictionWorkloads,
  runLoggedFio,
} from "./prediction_fio.ts";
import { formatPrediction } from "./prediction_table.ts";
import type { BackupMode, PredictionResult, PredictionRow } from "./prediction_types.ts";

export interface PredictionOptions {
  /** Values of `--predict-regions` to compare (the host's default is 16). */
  predicts?: number[];
  runtimeSec?: number;
  iodepth?: number;
  /** Volume (and nbdkit image) size; big enough that 5 s of sequential writes do not wrap. */
  sizeBytes?: number;
  /** Volume size of the second, offline-only pass of random and hot spot; 0 skips it. */
  largeSizeBytes?: number;
  workloads?: PredictionWorkloadKey[];
  modes?: BackupMode[];
  log?: (line: string) => void;
}

export const predictsDefault = [0, 4, 16, 64];
export const runtimeSecDefault = 5;
export const iodepthDefault = 32;
/** 16 GiB: sequential writes at nbdkit's ~50k IOPS cover 1 GiB in 5 s, so no run wraps. */
export const sizeBytesDefault = 16 * 2 ** 30;
/** 256 GiB: 5 s of random writes with 64 regions of look-ahead each mark well under half of it. */
export const largeSizeBytesDefault = 256 * 2 ** 30;
/** Workloads of the large-volume pass. */
const largeWorkloads: PredictionWorkloadKey[] = ["random", "hotspot"];
export const ampSeqGoal = 1.1;
export const iopsRatioGoal = 0.9;
/** Activity marks come in 4 MiB units: keep the warm-up write a unit away from fio's area. */
const unitBytes = 4 * 2 ** 20;

/** One nbdkit baseline and the host cases compared with it. */
interface Group {
  workload: PredictionWorkload;
  sizeBytes: number;
  modes: BackupMode[];
}

/** Runs every case; see the file comment. Returns JSON-ready settings, baselines and rows. */
export async function benchPrediction(o: PredictionOptions = {}): Promise<Record<string, unknown>> {
  const predicts = o.predicts ?? predictsDefault;
  const settings: PredictionResult["settings"] = {
    predicts,
    runtimeSec: o.runtimeSec ?? runtimeSecDefault,
    iodepth: o.iodepth ?? iodepthDefault,
    sizeBytes: o.sizeBytes ?? sizeBytesDefault,
    largeSizeBytes: o.largeSizeBytes ?? largeSizeBytesDefault,
    tailBytes: alignUp((Math.max(0, ...predicts) + 1) * regionBytesDefault, unitBytes) + unitBytes,
    regionBytes: regionBytesDefault,
    workloads: o.workloads ?? predictionWorkloads.map((w) => w.key),
    modes: o.modes ?? ["offline", "online"],
  };
  const log = o.log ?? ((line: string) => console.error(line));
  const result: PredictionResult = { settings, baselines: [], rows: [], failures: [] };
  const dir = await Deno.makeTempDir({ prefix: "prediction_bench_" });
  try {
    for (const g of planGroups(settings)) {
      const where = `${g.workload.label} (${g.sizeBytes / 2 ** 30} GiB)`;
      const fio = async (uri: string, name: string) => {
        const caseDir = `${dir}/${g.workload.key}_${g.sizeBytes}_${name}`;
        await Deno.mkdir(caseDir);
        return runLoggedFio({
          uri,
          workload: g.workload,
          areaBytes: g.sizeBytes - settings.tailBytes,
          regionBytes: settings.regionBytes,
          iodepth: settings.iodepth,
          runtimeSec: settings.runtimeSec,
          dir: caseDir,
        });
      };
      const fail = (target: string, err: unknown) => {
        const message = err instanceof Error ? err.message : String(err);
        result.failures.push({ workload: g.workload.key, sizeBytes: g.sizeBytes, target, message });
        log(`prediction: ${where}, ${target}: FAILED: ${message}`);
      };
      let base: LoggedFioResult;
      try {
        const target = await startTarget("nbdkit", { sizeBytes: g.sizeBytes });
        try {
          base = await fio(target.uri, "nbdkit");
        } finally {
          await target.stop();
        }
      } catch (err) {
        fail("nbdkit", err);
        continue;
      }
      result.baselines.push({ workload: g.workload.key, sizeBytes: g.sizeBytes, fio: base });
      log(`prediction: ${where}, nbdkit: ${Math.round(base.iops)} IOPS`);
      for (const mode of g.modes) {
        for (const predict of predicts) {
          const name = `${mode} N=${predict}`;
          try {
            const sys = await startSystem({
              sizeBytes: g.sizeBytes,
              hostArgs: ["--predict-regions", String(predict)],
            });
            let row: PredictionRow;
            try {
              row = await runCase(
                sys,
                g.workload,
                mode,
                predict,
                base.iops,
                (uri) => fio(uri, `${mode}_${predict}`),
              );
            } finally {
              await sys.stop();
            }
            result.rows.push(row);
            log(
              `prediction: ${where}, ${name}: ${Math.round(row.iops)} IOPS, ` +
                `${row.markCallsPer1000.toFixed(1)} mark calls/1000 writes, ` +
                `marked/distinct ${row.markedPerDistinct.toFixed(2)}`,
            );
          } catch (err) {
            fail(name, err);
          }
        }
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  return { ...result };
}

/** Every workload at `sizeBytes` in every mode, then the large-volume pass (offline only). */
function planGroups(s: PredictionResult["settings"]): Group[] {
  const groups: Group[] = [];
  for (const w of predictionWorkloads.filter((x) => s.workloads.includes(x.key))) {
    groups.push({ workload: w, sizeBytes: s.sizeBytes, modes: s.modes });
  }
  if (s.largeSizeBytes > 0 && s.modes.includes("offline")) {
    for (const w of predictionWorkloads) {
      if (!largeWorkloads.includes(w.key) || !s.workloads.includes(w.key)) continue;
      groups.push({ workload: w, sizeBytes: s.largeSizeBytes, modes: ["offline"] });
    }
  }
  for (const g of groups) {
    if (g.sizeBytes <= s.tailBytes) {
      throw new RangeError(`Volume size ${g.sizeBytes} leaves no room for fio beside the tail`);
    }
  }
  return groups;
}

/** One case on a fresh system: deltas of the host's and the tracker's counters around fio. */
async function runCase(
  sys: System,
  w: PredictionWorkload,
  mode: BackupMode,
  predict: number,
  nbdkitIops: number,
  fio: (uri: string) => Promise<LoggedFioResult>,
): Promise<PredictionRow> {
  await sys.waitMirroring();
  if (mode === "offline") await takeBackupOffline(sys);
  const [h0, t0] = [await hostSnapshot(sys), await trackerSnapshot(sys)];
  const r = await fio(sys.nbdUri);
  const [h1, t1] = [await hostSnapshot(sys), await trackerSnapshot(sys)];
  if (t1.regionBytes !== regionBytesDefault) {
    throw new Error(
      `Tracker region size ${t1.regionBytes} is not the ${regionBytesDefault} assumed`,
    );
  }
  const writes = h1.viaBackup + h1.viaTracker - h0.viaBackup - h0.viaTracker;
  const trackCommands = h1.trackerCommands - h0.trackerCommands;
  const activityCommands = h1.activityCommands - h0.activityCommands;
  const retires = h1.activityRetires - h0.activityRetires;
  const markedBytes = t1.dirtyBytes - t0.dirtyBytes +
    (t1.activityRegions - t0.activityRegions) * t1.regionBytes;
  const ratio = r.iops / nbdkitIops;
  const markedPerDistinct = markedBytes / r.distinctBytes;
  const goals: PredictionRow["goals"] = [];
  if (mode === "offline" && predict > 0) {
    goals.push({ name: `IOPS ≥${iopsRatioGoal}`, met: ratio >= iopsRatioGoal });
    if (w.key === "seq") {
      goals.push({ name: `amp ≤${ampSeqGoal}`, met: markedPerDistinct <= ampSeqGoal });
    }
  }
  return {
    workload: w.key,
    sizeBytes: sys.sizeBytes,
    mode,
    predict,
    iops: r.iops,
    ratio,
    writes,
    viaTracker: h1.viaTracker - h0.viaTracker,
    viaBackup: h1.viaBackup - h0.viaBackup,
    failed: h1.failed - h0.failed,
    modeAfter: h1.mode,
    trackCommands,
    activityCommands,
    retires,
    trackerCacheHits: h1.trackerCacheHits - h0.trackerCacheHits,
    markCallsPer1000: ((trackCommands + activityCommands) / writes) * 1000,
    retiresPer1000: (retires / writes) * 1000,
    fio: r,
    markedBytes,
    markedPerWritten: markedBytes / r.bytesWritten,
    markedPerDistinct,
    markedPerRegionFloor: markedBytes / (r.distinctRegions * t1.regionBytes),
    goals,
  };
}

/** Kills the backup and makes the host notice it with one write at the volume's very end. */
async function takeBackupOffline(sys: System): Promise<void> {
  await sys.backup.kill();
  const data = new Uint8Array(blockBytes).fill(0xa5);
  await new HostClient(sys.host.url).write(sys.volume, sys.sizeBytes - blockBytes, data);
  const { mode } = await hostSnapshot(sys);
  if (mode !== "tracking") throw new Error(`Host is in mode "${mode}" after the backup was killed`);
}

interface HostSnapshot {
  mode: string;
  viaBackup: number;
  viaTracker: number;
  failed: number;
  trackerCommands: number;
  trackerCacheHits: number;
  activityCommands: number;
  activityRetires: number;
}

async function hostSnapshot(sys: System): Promise<HostSnapshot> {
  const status = await new HostClient(sys.host.url).status();
  const v = status.volumes.find((x) => x.name === sys.volume);
  if (!v) throw new Error(`Host status lists no volume "${sys.volume}"`);
  return {
    mode: status.mode,
    viaBackup: v.writes?.viaBackup ?? 0,
    viaTracker: v.writes?.viaTracker ?? 0,
    failed: v.writes?.failed ?? 0,
    trackerCommands: v.trackerCommands,
    trackerCacheHits: v.trackerCacheHits,
    activityCommands: v.activity?.commandsSent ?? 0,
    activityRetires: v.activity?.retiresSent ?? 0,
  };
}

async function trackerSnapshot(
  sys: System,
): Promise<{ regionBytes: number; dirtyBytes: number; activityRegions: number }> {
  const res = await fetch(`${sys.tracker.url}/v1/volumes/${sys.volume}`);
  if (!res.ok) throw new Error(`Tracker volume info answered ${res.status}: ${await res.text()}`);
  const info = await res.json();
  return {
    regionBytes: info.regionBytes,
    dirtyBytes: info.dirtyBytes,
    activityRegions: info.activityRegions,
  };
}

const alignUp = (n: number, to: number) => Math.ceil(n / to) * to;

function parseList<T extends string>(
  flag: string,
  text: string | undefined,
  allowed: readonly T[],
) {
  if (text === undefined) return undefined;
  const keys = text.split(",").map((t) => t.trim()).filter(Boolean);
  for (const k of keys) {
    if (!allowed.includes(k as T)) {
      throw new RangeError(`--${flag}: "${k}" is not one of ${allowed.join(", ")}`);
    }
  }
  return keys as T[];
}

function wholeNumber(flag: string, text: string | undefined, min: number): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < min) {
    throw new RangeError(`--${flag} "${text}" must be a whole number >= ${min}`);
  }
  return n;
}

if (import.meta.main) {
  await runMain(async () => {
    const flags = parseFlags(Deno.args, {
      predict: { type: "string" },
      runtime: { type: "string" },
      iodepth: { type: "string" },
      size: { type: "string" },
      "large-size": { type: "string" },
      workloads: { type: "string" },
      modes: { type: "string" },
      json: { type: "string" },
    });
    const result = await benchPrediction({
      predicts: flags.predict?.split(",").map((t) => wholeNumber("predict", t.trim(), 0)!),
      runtimeSec: wholeNumber("runtime", flags.runtime, 1),
      iodepth: wholeNumber("iodepth", flags.iodepth, 1),
      sizeBytes: flags.size === undefined ? undefined : parseSize(flags.size),
      largeSizeBytes: flags["large-size"] === undefined
        ? undefined
        : parseSize(flags["large-size"]),
      workloads: parseList("workloads", flags.workloads, predictionWorkloads.map((w) => w.key)),
      modes: parseList("modes", flags.modes, ["offline", "online"] as const),
    });
    console.log(formatPrediction(result));
    if (flags.json) await Deno.writeTextFile(flags.json, JSON.stringify(result, null, 2) + "\n");
    if ((result.failures as unknown[]).length > 0) Deno.exit(1);
  });
}
