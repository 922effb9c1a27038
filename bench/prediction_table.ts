/**
 * The prediction bench's result as text: one block of rows per workload and volume size, nbdkit
 * first, then the host agent per backup mode and look-ahead N; under it, what a sequential stream
 * would cost with exactly one tracker command per look-ahead window, and anything odd.
 */
import type { PredictionResult } from "./prediction_types.ts";
import { blockBytes, predictionWorkloads } from "./prediction_fio.ts";
import { table } from "./table.ts";

/** Activity unit of the host's default `--activity-unit-bytes`, for the ideal-calls footnote. */
const activityUnitBytes = 4 * 2 ** 20;

export function formatPrediction(result: Record<string, unknown>): string {
  const r = result as unknown as PredictionResult;
  const s = r.settings;
  const rows: string[][] = [];
  for (const base of r.baselines) {
    const w = predictionWorkloads.find((x) => x.key === base.workload)!;
    rows.push([
      `${w.label}, ${gib(base.sizeBytes)}`,
      "nbdkit file",
      "",
      String(Math.round(base.fio.iops)),
      "1.00",
      "",
      "",
      String(mib(base.fio.bytesWritten)),
      String(mib(base.fio.distinctBytes)),
      "",
      "",
      "",
      "",
    ]);
    for (const row of r.rows) {
      if (row.workload !== base.workload || row.sizeBytes !== base.sizeBytes) continue;
      rows.push([
        "",
        row.mode === "offline" ? "offline (dirty)" : "online (activity)",
        String(row.predict),
        String(Math.round(row.iops)),
        fixed(row.ratio, 2),
        fixed(row.markCallsPer1000, 1),
        row.mode === "online" ? fixed(row.retiresPer1000, 1) : "",
        String(mib(row.fio.bytesWritten)),
        String(mib(row.fio.distinctBytes)),
        String(mib(row.markedBytes)),
        fixed(row.markedPerDistinct, 2),
        fixed(row.markedPerRegionFloor, 2),
        row.goals.map((g) => `${g.name} ${g.met ? "ok" : "MISS"}`).join("; "),
      ]);
    }
  }
  const head = [
    "workload, volume",
    "backup (marks)",
    "N",
    "IOPS",
    "vs nbdkit",
    "marks/1k wr",
    "retires/1k",
    "written MiB",
    "distinct MiB",
    "marked MiB",
    "marked/distinct",
    "marked/floor",
    "goals",
  ];
  const writesPerRegion = s.regionBytes / blockBytes;
  const ideal = (n: number) => {
    const offline = 1000 / (writesPerRegion * (n + 1));
    const unitsAhead = Math.ceil((n * s.regionBytes) / activityUnitBytes);
    const online = 1000 / ((activityUnitBytes / blockBytes) * (unitsAhead + 1));
    return `N=${n} ${offline.toFixed(1)} / ${online.toFixed(2)}`;
  };
  const lines = [
    `prediction: fio nbd engine, 4 KiB writes, qd ${s.iodepth}, ${s.runtimeSec} s per case, ` +
    "sparse volume (fio writes all but its last " +
    `${mib(s.tailBytes)} MiB), a fresh system per case. marks/1k wr = tracking (offline) or ` +
    "activity (online) commands per 1000 writes; marked = dirty bytes (offline) or activity " +
    "bytes (online) the run added; distinct = distinct 4 KiB blocks in fio's write log; " +
    `floor = distinct ${s.regionBytes / 1024} KiB regions written`,
    table(...alignRight(head, rows, [2, 3, 4, 5, 6, 7, 8, 9, 10, 11])),
    `one command per look-ahead window, sequential (offline / online marks per 1000 writes): ` +
    s.predicts.map(ideal).join(", "),
  ];
  for (const x of r.rows) {
    const offPath = x.mode === "offline" ? x.viaBackup : x.viaTracker;
    if (x.failed === 0 && offPath === 0 && x.writes === x.fio.loggedWrites) continue;
    lines.push(
      `note: ${x.workload} ${gib(x.sizeBytes)} ${x.mode} N=${x.predict}: ${x.writes} host writes ` +
        `(${x.viaBackup} via backup, ${x.viaTracker} via tracker, ${x.failed} failed), fio ` +
        `logged ${x.fio.loggedWrites}; mode after: ${x.modeAfter}`,
    );
  }
  for (const f of r.failures) {
    lines.push(`FAILED ${f.workload} ${gib(f.sizeBytes)} ${f.target}: ${f.message}`);
  }
  return lines.join("\n");
}

/** Pads the cells of the given columns to their width, so `table` shows them right-aligned. */
function alignRight(head: string[], rows: string[][], columns: number[]): [string[], string[][]] {
  const all = [head, ...rows];
  for (const c of columns) {
    const width = Math.max(...all.map((r) => r[c].length));
    for (const r of all) r[c] = r[c].padStart(width);
  }
  return [head, rows];
}

const mib = (bytes: number) => Math.round(bytes / 2 ** 20);
const gib = (bytes: number) => `${Math.round(bytes / 2 ** 30)} GiB`;
const fixed = (x: number, digits: number) => (Number.isFinite(x) ? x.toFixed(digits) : "-");
