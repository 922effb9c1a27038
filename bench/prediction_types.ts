/**
 * The shapes of the prediction bench's result, apart from the bench so its table
 * (prediction_table.ts) reads them without importing the bench.
 */
import type { LoggedFioResult, PredictionWorkloadKey } from "./prediction_fio.ts";

export type BackupMode = "offline" | "online";

/** One workload × volume size × backup mode × N. */
export interface PredictionRow {
  workload: PredictionWorkloadKey;
  sizeBytes: number;
  mode: BackupMode;
  predict: number;
  iops: number;
  /** IOPS / nbdkit's IOPS on the same workload and volume size. */
  ratio: number;
  /** Writes the host forked during the run, and how. */
  writes: number;
  viaTracker: number;
  viaBackup: number;
  failed: number;
  modeAfter: string;
  /** Tracker commands during the run: dirty marks, activity marks, activity retires. */
  trackCommands: number;
  activityCommands: number;
  retires: number;
  trackerCacheHits: number;
  markCallsPer1000: number;
  retiresPer1000: number;
  fio: LoggedFioResult;
  /** Dirty bytes plus activity bytes the run added at the tracker. */
  markedBytes: number;
  markedPerWritten: number;
  markedPerDistinct: number;
  /** markedBytes / (distinct regions × region bytes). */
  markedPerRegionFloor: number;
  /** Goals that apply to this row and whether they were met. */
  goals: { name: string; met: boolean }[];
}

/** nbdkit's file plugin on one workload and volume size: the baseline of the IOPS ratio. */
export interface PredictionBaseline {
  workload: PredictionWorkloadKey;
  sizeBytes: number;
  fio: LoggedFioResult;
}

export interface PredictionFailure {
  workload: string;
  sizeBytes: number;
  target: string;
  message: string;
}

/** What `benchPrediction` returns (as a JSON-ready record). */
export interface PredictionResult {
  settings: {
    predicts: number[];
    runtimeSec: number;
    iodepth: number;
    sizeBytes: number;
    largeSizeBytes: number;
    /** fio writes inside [0, size - tailBytes); the tail is kept for the warm-up write. */
    tailBytes: number;
    regionBytes: number;
    workloads: PredictionWorkloadKey[];
    modes: BackupMode[];
  };
  baselines: PredictionBaseline[];
  rows: PredictionRow[];
  failures: PredictionFailure[];
}
