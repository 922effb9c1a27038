/**
 * The NBD bench's cost line: per-write CPU, records a backup sync and syncs a second are medians
 * over the rounds, computed from each round's own counter deltas and wall window.
 */
import assert from "node:assert/strict";
import { describeCostMedians } from "../bench/nbd_table.ts";
import type { WritePaths } from "../bench/nbd_types.ts";

function paths(over: Partial<WritePaths>): WritePaths {
  return {
    modeAfter: "mirroring",
    windowSec: 6,
    viaBackup: 0,
    viaTracker: 0,
    failed: 0,
    backupBatches: 0,
    trackerCommands: 0,
    trackerCacheHits: 0,
    activityCommands: 0,
    activityRetires: 0,
    hostCpuSec: 0,
    backupCpuSec: 0,
    backupSyncs: 0,
    backupRecords: 0,
    markCount: 0,
    markSec: 0,
    commitCount: 0,
    commitSec: 0,
    ...over,
  };
}

Deno.test("cost medians: each figure is the median of the rounds' own ratios", () => {
  const runs = [
    {
      paths: paths({
        viaBackup: 1000,
        hostCpuSec: 0.05,
        backupCpuSec: 0.04,
        backupSyncs: 100,
        backupRecords: 1000,
        windowSec: 2,
      }),
    },
    {
      paths: paths({
        viaBackup: 2000,
        hostCpuSec: 0.06,
        backupCpuSec: 0.1,
        backupSyncs: 100,
        backupRecords: 2000,
        windowSec: 1,
      }),
    },
    {
      paths: paths({
        viaBackup: 4000,
        hostCpuSec: 0.4,
        backupCpuSec: 0.2,
        backupSyncs: 1000,
        backupRecords: 4000,
        windowSec: 4,
      }),
    },
    {}, // a round without counters (nbdkit) is left out
  ];
  // host µs a write 50, 30, 100 → 50; backup 40, 50, 50 → 50; records a sync 10, 20, 4 → 10;
  // syncs a second 50, 100, 250 → 100.
  assert.equal(
    describeCostMedians(runs),
    "CPU a write: host 50 µs, backup 50 µs, 10.0 records a backup sync, 100 syncs/s (medians of 3)",
  );
});

Deno.test("cost medians: no backup syncs (tracking) prints CPU only; no writes says so", () => {
  const tracking = [{ paths: paths({ viaTracker: 500, hostCpuSec: 0.05 }) }];
  assert.equal(
    describeCostMedians(tracking),
    "CPU a write: host 100 µs, backup 0 µs (medians of 1)",
  );
  assert.equal(describeCostMedians([{ paths: paths({}) }, {}]), "no writes counted");
});
