/**
 * The NBD bench's result as text: one block of rows per workload (IOPS, MB/s, p50 / p99 completion
 * latency, ratio to nbdkit and the goal), then which write path the host agent took.
 */
import type { NbdBenchResult, WritePaths } from "./nbd_types.ts";
import { targetLabels } from "./nbd_targets.ts";

/** One line saying which path writes took (deltas of the host agent's counters). */
export function describePaths(p: WritePaths): string {
  const parts = [`mode ${p.modeAfter}`];
  if (p.viaBackup) parts.push(`${p.viaBackup} via backup in ${p.backupBatches} batches`);
  if (p.activityCommands || p.activityRetires) {
    parts.push(`${p.activityCommands} activity-mark and ${p.activityRetires} retire commands`);
  }
  if (p.viaTracker) {
    parts.push(
      `${p.viaTracker} via tracker (${p.trackerCommands} tracking commands, ` +
        `${p.trackerCacheHits} writes found their regions already marked)`,
    );
  }
  if (p.markCount > 0) {
    const mean = (sec: number, n: number) => `${Math.round((sec * 1e6) / n)} µs`;
    parts.push(
      `a tracking command ${mean(p.markSec, p.markCount)} at the host, a tracker commit ` +
        `${mean(p.commitSec, p.commitCount)} (means)`,
    );
  }
  if (p.failed) parts.push(`${p.failed} failed`);
  const writes = p.viaBackup + p.viaTracker + p.failed;
  if (writes > 0) {
    const us = (sec: number) => `${Math.round((sec * 1e6) / writes)} µs`;
    parts.push(`CPU a write: host ${us(p.hostCpuSec)}, backup ${us(p.backupCpuSec)}`);
  }
  if (p.backupSyncs > 0) {
    parts.push(
      `${(p.backupRecords / p.backupSyncs).toFixed(1)} records a backup sync, ` +
        `${p.backupSyncs} syncs` +
        (p.windowSec > 0 ? ` (${Math.round(p.backupSyncs / p.windowSec)}/s)` : ""),
    );
  }
  return parts.join(", ");
}

/**
 * The per-write costs issue 8 asks for, as medians over the rounds that have counters: CPU µs a
 * write of host and backup, records a backup sync and backup syncs a second.
 */
export function describeCostMedians(runs: { paths?: WritePaths }[]): string {
  const paths = runs.flatMap((r) => (r.paths ? [r.paths] : []));
  const writes = (p: WritePaths) => p.viaBackup + p.viaTracker + p.failed;
  const counted = paths.filter((p) => writes(p) > 0);
  if (counted.length === 0) return "no writes counted";
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const cpuUs = (sec: (p: WritePaths) => number) =>
    Math.round(med(counted.map((p) => (sec(p) * 1e6) / writes(p))));
  const parts = [
    `CPU a write: host ${cpuUs((p) => p.hostCpuSec)} µs, backup ${cpuUs((p) => p.backupCpuSec)} µs`,
  ];
  const synced = counted.filter((p) => p.backupSyncs > 0 && p.windowSec > 0);
  if (synced.length > 0) {
    parts.push(
      `${med(synced.map((p) => p.backupRecords / p.backupSyncs)).toFixed(1)} records a backup ` +
        `sync, ${Math.round(med(synced.map((p) => p.backupSyncs / p.windowSec)))} syncs/s`,
    );
  }
  return `${parts.join(", ")} (medians of ${counted.length})`;
}

/** The result as a readable table (one block per workload) with the write paths taken. */
export function formatNbd(r: NbdBenchResult): string {
  const s = r.settings;
  const lines = [
    `nbd: fio nbd engine, one job; ${fmtSize(s.sizeBytes)} sparse raw image per case; ` +
    `${s.rampSec} s ramp + ${s.runtimeSec} s measured; ${s.rounds} round(s)` +
    (s.rounds > 1 ? " (medians; IOPS spread = (max-min)/median)" : "") +
    (s.hostArgs.length ? `; host agent flags: ${s.hostArgs.join(" ")}` : ""),
  ];
  const head = [
    "workload".padEnd(22),
    "target".padEnd(27),
    "IOPS".padStart(8),
    "MB/s".padStart(8),
    "p50 µs".padStart(8),
    "p99 µs".padStart(8),
    "vs (a)".padStart(7),
    "goal".padStart(10),
  ];
  if (s.rounds > 1) head.push("spread".padStart(7));
  lines.push(head.join("  "));
  for (const w of s.workloads) {
    let first = true;
    for (const row of r.rows.filter((x) => x.workload === w.key)) {
      const cells = [
        (first ? w.label : "").padEnd(22),
        targetLabels[row.target].padEnd(27),
        String(Math.round(row.iops)).padStart(8),
        row.mbPerSec.toFixed(1).padStart(8),
        fmtUs(row.p50Us).padStart(8),
        fmtUs(row.p99Us).padStart(8),
        (row.ratio === undefined ? "" : row.ratio.toFixed(2)).padStart(7),
        (row.goal === undefined ? "" : `≥${row.goal.toFixed(2)} ${row.met ? "ok" : "MISS"}`)
          .padStart(10),
      ];
      if (s.rounds > 1) {
        cells.push(`${Math.round(((row.iopsMax - row.iopsMin) / row.iops) * 100)}%`.padStart(7));
      }
      lines.push(cells.join("  "));
      first = false;
    }
  }
  const pathRows = r.rows.filter((row) => row.runs.some((x) => x.paths));
  if (pathRows.length > 0) {
    lines.push("", "costs (host counters over ramp + run, medians over rounds):");
    for (const row of pathRows) {
      const w = s.workloads.find((x) => x.key === row.workload)!;
      lines.push(
        `  ${targetLabels[row.target].padEnd(27)} ${w.label.padEnd(22)} ` +
          describeCostMedians(row.runs),
      );
    }
    lines.push("", "write paths (host counters over ramp + run, last round):");
    for (const row of pathRows) {
      const p = row.runs[row.runs.length - 1].paths!;
      const w = s.workloads.find((x) => x.key === row.workload)!;
      lines.push(
        `  ${targetLabels[row.target].padEnd(27)} ${w.label.padEnd(22)} ${describePaths(p)}`,
      );
    }
  }
  if (r.failures.length > 0) {
    lines.push("", `FAILED runs (${r.failures.length}), left out of the medians:`);
    for (const f of r.failures) {
      lines.push(`  round ${f.round} ${targetLabels[f.target]}, ${f.workload}: ${f.message}`);
    }
  }
  return lines.join("\n");
}

function fmtSize(bytes: number): string {
  for (const [unit, n] of [["GiB", 2 ** 30], ["MiB", 2 ** 20], ["KiB", 2 ** 10]] as const) {
    if (bytes >= n && bytes % n === 0) return `${bytes / n} ${unit}`;
  }
  return `${bytes} bytes`;
}

function fmtUs(us: number): string {
  return us >= 1000 ? us.toFixed(0) : us.toFixed(1);
}
