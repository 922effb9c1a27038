/**
 * Readable tables of the tracker, backup and host HTTP benches' results (flat records of numbers,
 * as those benches return them). The NBD and prediction benches format their own (nbd_table.ts, prediction_table.ts).
 */
import { caseBytes as backupCaseBytes } from "./backup_bench.ts";
import {
  caseMs as hostCaseMs,
  clientsConcurrent as hostClientsConcurrent,
} from "./host_http_bench.ts";
import {
  caseMs as trackerCaseMs,
  clientsConcurrent as trackerClientsConcurrent,
} from "./tracker_bench.ts";
import { table } from "./table.ts";

export function formatTracker(r: Record<string, number>): string {
  const rows: (string | number)[][] = [];
  for (const workload of ["spread", "hot"]) {
    for (const mode of ["group", "naive"]) {
      const cmds = r[`${mode}_${workload}_cmds_per_s`];
      if (cmds === undefined) continue;
      rows.push([workload, mode, cmds, r[`${mode}_${workload}_atomics_per_cmd`]]);
    }
  }
  return [
    `tracker: ${trackerClientsConcurrent} concurrent clients, ${trackerCaseMs} ms a case, ` +
    "4 KiB marks over HTTP, KV in a temp file (group = the real tracker, naive = one atomic per " +
    "request)",
    table(["workload", "mode", "commands/s", "KV atomics/command"], rows),
  ].join("\n");
}

export function formatBackup(r: Record<string, number>): string {
  const rows: (string | number)[][] = [];
  for (const [key, mbps] of Object.entries(r)) {
    const m = /^backup_MBps_(.+)_c(\d+)$/.exec(key);
    if (!m) continue;
    rows.push([m[1], Number(m[2]), mbps, r[`backup_fsyncs_per_batch_${m[1]}_c${m[2]}`]]);
  }
  return [
    `backup: ${backupCaseBytes / 2 ** 20} MiB of batches a case over HTTP, each acknowledged ` +
    "after its group's fdatasync; applier running",
    table(["batch", "clients", "MB/s", "journal fsyncs/batch"], rows),
  ].join("\n");
}

export function formatHostHttp(r: Record<string, number>): string {
  const label: Record<string, string> = {
    host_http_4k_writes_per_sec_no_fork: "4 KiB writes/s, --no-fork (pass-through)",
    host_http_4k_writes_per_sec_backup_online: "4 KiB writes/s, forked, backup online",
    host_http_writes_per_backup_batch: "writes per backup batch (online)",
    host_http_online_cpu_us_per_write_client: "CPU µs a write (online): the bench's fetch client",
    host_http_online_cpu_us_per_write_host: "CPU µs a write (online): host agent",
    host_http_online_cpu_us_per_write_backup: "CPU µs a write (online): backup",
    host_http_online_cpu_us_per_write_tracker: "CPU µs a write (online): tracker",
    host_http_4k_writes_per_sec_backup_offline: "4 KiB writes/s, forked, backup killed",
    host_http_tracker_commands_per_1000_offline_writes: "tracking commands per 1000 offline writes",
  };
  return [
    `host HTTP: ${hostClientsConcurrent} concurrent clients, ${hostCaseMs} ms a case, PUT 4 KiB ` +
    "at random aligned offsets of a 256 MiB volume",
    table(
      ["measure", "value"],
      Object.entries(r).map(([k, v]) => [label[k] ?? k, v]),
    ),
  ].join("\n");
}
