/**
 * The shapes of the NBD bench's result, apart from the bench so its table (nbd_table.ts) reads
 * them without importing the bench.
 */
import type { FioResult, Workload } from "./fio.ts";
import type { HostCounters, TargetKey } from "./nbd_targets.ts";

/** Which write path the host took during one workload: deltas of its counters, and its mode after. */
/** Counter deltas over one fio run (ramp + measured time), and that window's wall seconds. */
export type WritePaths = Omit<HostCounters, "mode"> & { modeAfter: string; windowSec: number };

/** One target × workload, over every round. */
export interface NbdRow {
  target: TargetKey;
  workload: string;
  /** Medians over rounds. */
  iops: number;
  mbPerSec: number;
  p50Us: number;
  p99Us: number;
  /** IOPS / IOPS of nbdkit for the same workload (medians); absent for nbdkit itself. */
  ratio?: number;
  /** The goal for the ratio, when issue 3 sets one. */
  goal?: number;
  met?: boolean;
  /** Lowest and highest IOPS over rounds. */
  iopsMin: number;
  iopsMax: number;
  /** Every round as measured. */
  runs: (FioResult & { paths?: WritePaths })[];
}

/** A fio run that did not complete (its case is left out of the medians). */
export interface NbdFailure {
  target: TargetKey;
  workload: string;
  round: number;
  message: string;
}

export interface NbdBenchResult {
  settings: {
    rounds: number;
    runtimeSec: number;
    rampSec: number;
    sizeBytes: number;
    workloads: Workload[];
    targets: TargetKey[];
    hostArgs: string[];
  };
  rows: NbdRow[];
  failures: NbdFailure[];
}
