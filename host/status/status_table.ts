/**
 * The human form of the status document: a header line with the health, then aligned tables of
 * the tracker, host agents, backups and volumes (IEC units, ages like `3m12s`), then the problems,
 * one a line — the shape of `drbdadm status`, with the reasons spelled out.
 */
import { formatBytes } from "../../src/extent.ts";
import type { StoreHealth } from "../../src/schemas.ts";
import { storeProblem } from "../../src/status/store_problem.ts";
import type {
  HostComponentView,
  SystemStatus,
  VolumeRow,
} from "../../src/status/status_document.ts";

/** `seconds` as `45s`, `3m12s`, `2h05m`, `3d04h`; below one second `<1s`. */
export function formatAge(seconds: number): string {
  if (seconds < 1) return "<1s";
  const s = Math.floor(seconds);
  if (s < 60) return `${s}s`;
  const pad = (n: number) => String(n).padStart(2, "0");
  if (s < 3600) return `${Math.floor(s / 60)}m${pad(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${pad(Math.floor(s / 60) % 60)}m`;
  return `${Math.floor(s / 86400)}d${pad(Math.floor(s / 3600) % 24)}h`;
}

/** Rows of cells as lines, each column as wide as its widest cell, two spaces apart. */
export function alignColumns(rows: readonly string[][]): string[] {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, i) => widths[i] = Math.max(widths[i] ?? 0, cell.length));
  }
  return rows.map((row) =>
    row.map((cell, i) => i === row.length - 1 ? cell : cell.padEnd(widths[i])).join("  ")
      .trimEnd()
  );
}

/** "online for 3m12s" style: a state and how long it has held (when known). */
function stateFor(state: string, since: number | null, at: number): string {
  return since === null ? state : `${state} ${formatAge((at - since) / 1000)}`;
}

function seen(c: HostComponentView | null, at: number): string {
  return c === null ? "-" : stateFor(c.state, c.since, at);
}

function dirtyCell(v: VolumeRow): string {
  return v.dirty.regions === 0 ? "0" : `${formatBytes(v.dirty.bytes)} (${v.dirty.regions} r)`;
}

function lagCell(v: VolumeRow): string {
  if (v.lag === null) return "?";
  if (v.lag.records === 0) return "0";
  return `${formatBytes(v.lag.bytes)}, ${v.lag.records} rec, ${formatAge(v.lag.seconds)}`;
}

function resyncCell(v: VolumeRow): string {
  const r = v.resync;
  if (r === null) return "-";
  const mode = r.mode === "checksum" ? "checksum " : "";
  if (r.state !== "running") {
    return r.state === "failed" ? `${mode}failed: ${r.error ?? "?"}` : `${mode}${r.state}`;
  }
  const total = Math.max(r.bytesTotal, r.bytesDone);
  const pct = total > 0 ? Math.floor((r.bytesDone / total) * 100) : 0;
  const eta = r.etaSeconds === null ? "" : ` ETA ${formatAge(r.etaSeconds)}`;
  return `${mode}${pct}% ${formatBytes(r.bytesDone)}/${formatBytes(total)} ` +
    `${formatBytes(r.bytesPerSec)}/s${eta}`;
}

/**
 * "etcd ok (checked 1s ago)" / "etcd NOT OK (…)": the tracker's store as its probe last found it
 * (the reason is in the problems); "-" when the tracker does not say.
 */
function storeCell(store: StoreHealth | null, at: number): string {
  if (store === null) return "-";
  const age = formatAge(Math.max(0, at - store.checkedAt) / 1000);
  return `${store.kind} ${store.ok ? "ok" : "NOT OK"} (checked ${age} ago)`;
}

/** The whole status as lines of text. */
export function renderStatusTable(doc: SystemStatus): string[] {
  const at = doc.at;
  const lines = [
    `trackmirror status at ${doc.atIso}: ${doc.health.toUpperCase()} (exit ${doc.exitCode})`,
    doc.tracker.volumes === null
      ? `volumes unknown: ${
        doc.tracker.store?.ok === false
          ? `the tracker's ${storeProblem(doc.tracker.store)}`
          : "the tracker does not answer"
      }`
      : `${doc.volumes.filter((v) => v.inSync).length}/${doc.volumes.length} volume(s) in sync`,
    "",
  ];
  const t = doc.tracker;
  lines.push(
    ...alignColumns([
      ["TRACKER", "STATE", "VOLUMES", "DIRTY VOLUMES", "STORE"],
      [
        t.url + (t.urls ? " (current)" : ""),
        stateFor(t.state, t.since, at),
        t.volumes === null ? "?" : String(t.volumes),
        t.dirtyVolumes === null ? "?" : String(t.dirtyVolumes),
        storeCell(t.store, at),
      ],
      // Issue 12: the other trackers of the list, as their health checks found them.
      ...(t.urls ?? []).filter((s) => s.url !== t.url).map((s) => [
        `${s.url} (standby)`,
        s.state,
        "-",
        "-",
        "-",
      ]),
    ]),
  );
  if (doc.hosts.length > 0) {
    lines.push("");
    lines.push(
      ...alignColumns([
        ["HOST", "URL", "STATE", "MODE", "ACK", "ITS BACKUP", "ITS TRACKER"],
        ...doc.hosts.map((h) => [
          h.id ?? "?",
          h.url,
          stateFor(h.state, h.since, at),
          h.mode ?? "-",
          h.ack ?? "-",
          seen(h.backup, at),
          seen(h.tracker, at),
        ]),
      ]),
    );
  }
  if (doc.backups.length > 0) {
    lines.push("");
    lines.push(
      ...alignColumns([
        ["BACKUP", "STATE", "JOURNAL PENDING", "RECORDS ACKED/APPLIED"],
        ...doc.backups.map((b) => [
          b.url,
          stateFor(b.state, b.since, at),
          b.journalBytesPending === null
            ? "?"
            : `${formatBytes(b.journalBytesPending)} of ${formatBytes(b.journalBytesMax ?? 0)}`,
          b.recordsAcknowledged === null ? "?" : `${b.recordsAcknowledged}/${b.recordsApplied}`,
        ]),
      ]),
    );
  }
  if (doc.volumes.length > 0) {
    lines.push("");
    lines.push(
      ...alignColumns([
        [
          "VOLUME",
          "HOST",
          "MODE",
          "IN SYNC",
          "DIRTY",
          "OLDEST MARK",
          "BACKUP LAG",
          "TRUST",
          "RESYNC",
        ],
        ...doc.volumes.map((v) => [
          v.name,
          v.ownerHost,
          v.mode ?? "?",
          v.inSync ? "yes" : "no",
          dirtyCell(v),
          v.dirty.oldestMarkAgeSeconds === null ? "-" : formatAge(v.dirty.oldestMarkAgeSeconds),
          lagCell(v),
          v.trust ?? "?",
          resyncCell(v),
        ]),
      ]),
    );
  }
  if (doc.problems.length > 0) {
    lines.push("", "problems:");
    for (const p of doc.problems) lines.push(`  ${p}`);
  }
  return lines;
}
