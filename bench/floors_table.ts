/**
 * The floors bench's table (floors_bench.ts): one line per measurement with its numbers, then
 * what each one bounds, in the bench's own numbers.
 */
import { formatBytes } from "../src/extent.ts";
import {
  fioRuntimeSec,
  type FloorsResult,
  groupBytes,
  httpMs,
  journalBytes,
  kvMs,
  mirrorIops,
  sparseBytes,
} from "./floors_bench.ts";
import { table } from "./table.ts";

const us = (x: number) => `${x} µs`;
const latencies = (r: Record<string, number>, prefix: string) =>
  `p50 ${us(r[`${prefix}_p50_us`])}, p99 ${us(r[`${prefix}_p99_us`])}`;
const ratio = (a: number, b: number) => (a / b).toFixed(1);

export function formatFloors(result: FloorsResult): string {
  const r = result.floors;
  const sparse = `sparse ${formatBytes(sparseBytes)}`;
  const rows: string[][] = [
    [
      "F1",
      `4 KiB buffered random pwrite, ${sparse}, 1 thread`,
      `${r.f1_iops} IOPS, ${r.f1_cpu_us_per_write} CPU µs a write (${r.f1_cpu_percent}% of a CPU)`,
    ],
    [
      "F2",
      `${formatBytes(groupBytes)} write + fdatasync, qd1, preallocated ${
        formatBytes(journalBytes)
      }`,
      `${r.f2_syncs_per_s} syncs/s, fdatasync ${latencies(r, "f2_sync")}`,
    ],
    [
      "F3",
      `F2 beside two 4 KiB randwriters paced at ${mirrorIops} IOPS (${sparse} each)`,
      `journal ${r.f3_journal_syncs_per_s} syncs/s, fdatasync ${
        latencies(r, "f3_journal_sync")
      }; ` +
      `secondary ${r.f3_secondary_iops} IOPS (fsync every 16384 writes, ` +
      `${r.f3_secondary_cpu_percent}% CPU), primary ${r.f3_primary_iops} IOPS ` +
      `(${r.f3_primary_cpu_percent}% CPU)`,
    ],
    [
      "F4",
      "1 MiB seq: journal (fdatasync every 8 MiB) + secondary (fsync every 64 MiB) + primary",
      `journal ${r.f4_journal_MBps}, secondary ${r.f4_secondary_MBps}, primary ` +
      `${r.f4_primary_MBps}, total ${r.f4_total_MBps} MB/s`,
    ],
    ["F4", "1 MiB seq: the journal alone", `${r.f4_journal_alone_MBps} MB/s`],
    [
      "F5",
      "Deno KV atomic set of 256 B + commit, depth 1",
      `${r.f5_commits_per_s} commits/s, ${latencies(r, "f5_commits")}`,
    ],
    [
      "F6",
      "POST 100 B JSON -> 204 on loopback, depth 1, one process",
      `${r.f6_one_process_round_trips_per_s}/s, ${latencies(r, "f6_one_process_round_trips")}`,
    ],
    [
      "F6",
      "the same, server in a child process",
      `${r.f6_two_processes_round_trips_per_s}/s, ` +
      latencies(r, "f6_two_processes_round_trips"),
    ],
  ];
  const bounds = [
    `F1  CPU µs of one page-cache copy: ${r.f1_cpu_us_per_write} µs; a mirrored write makes three ` +
    `(primary, journal, secondary): ${(3 * r.f1_cpu_us_per_write).toFixed(1)} µs`,
    `F2  the flush a durable ack waits for, quiet: fdatasync p50 ${us(r.f2_sync_p50_us)}`,
    `F3  the same flush beside the mirror's other writes: p50 ${us(r.f3_journal_sync_p50_us)} ` +
    `(${ratio(r.f3_journal_sync_p50_us, r.f2_sync_p50_us)} × quiet), p99 ` +
    `${us(r.f3_journal_sync_p99_us)} (${
      ratio(r.f3_journal_sync_p99_us, r.f2_sync_p99_us)
    } × quiet)`,
    `F4  disk bandwidth left for three copies: ${r.f4_total_MBps} MB/s for the three together ` +
    `(the primary never syncs in ${fioRuntimeSec} s, so its share is page cache); the journal ` +
    `alone ${r.f4_journal_alone_MBps} MB/s`,
    `F5  a tracking-mode mark's floor: one KV commit p50 ${us(r.f5_commits_p50_us)}`,
    `F6  plus its transport: one loopback POST p50 ${us(r.f6_two_processes_round_trips_p50_us)} ` +
    `between two processes, ${us(r.f6_one_process_round_trips_p50_us)} in one`,
  ];
  return [
    `floors: this machine without trackmirror (${result.fio} psync and plain Deno), files in a temp ` +
    `dir as the NBD bench's; fio ${fioRuntimeSec} s a run, KV ${kvMs / 1000} s, HTTP ` +
    `${httpMs / 1000} s; one run on a shared machine: rough numbers`,
    table(["", "measurement", "result"], rows),
    "what it bounds:",
    ...bounds,
  ].join("\n");
}
