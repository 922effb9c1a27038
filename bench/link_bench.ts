/**
 * A quick measurement of the link alone (not part of `deno task bench` yet): starts a backup
 * process on a temp dir, pushes 4 KiB records through host/link/link_client.ts → the backup's link
 * server → its journal from 32 concurrent submitters, in `durable` then `received` mode, and
 * prints records/s, records per journal fdatasync, p50/p99 submit latency and the CPU (every
 * thread, from /proc) per record of the backup and of this process (the host's end of the link).
 * `--record-kib 1024` sends 1 MiB records instead (their payloads take the link's direct path).
 *
 *   deno run -A bench/link_bench.ts [--seconds 3] [--depth 32] [--record-kib 4] [--unix]
 *     [--perf-map]
 *
 * `--perf-map` starts the backup with V8's `--perf-basic-prof`, so `perf record -e cpu-clock -g
 * -p PID` names its JavaScript frames (/tmp/perf-PID.map): the V8 profile (`--cpu-prof`) samples
 * wall time, and on a loaded machine charges to syscalls the time the thread sat preempted.
 */
import { join } from "node:path";
import { parseFlags, runMain } from "../src/flags.ts";
import { LinkClient } from "../host/link/link_client.ts";
import type { AckMode } from "../src/link_protocol.ts";
import { randomBytes, seededRandom } from "../src/random.ts";

const volumeBytes = 256 * 1024 * 1024;

interface Backup {
  proc: Deno.ChildProcess;
  http: string;
  link: string;
  dir: string;
}

async function startBackup(unix: boolean, perfMap: boolean): Promise<Backup> {
  const dir = await Deno.makeTempDir({ prefix: "link_bench_" });
  const args = [
    "run",
    "-A",
    ...(perfMap ? ["--v8-flags=--perf-basic-prof"] : []),
    join(import.meta.dirname!, "../backup/main.ts"),
    "--port",
    "0",
  ];
  args.push("--link-port", "0", "--data", join(dir, "data"));
  if (unix) args.push("--link-socket", join(dir, "link.sock"));
  const proc = new Deno.Command(Deno.execPath(), { args, stdout: "piped", stderr: "inherit" })
    .spawn();
  const lines = proc.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  let http = "";
  let link = "";
  while (!http || !link) {
    const { value, done } = await lines.read();
    if (done) throw new Error(`The backup exited before listening: ${text}`);
    text += value;
    http ||= /listening on (http:\/\/\S+?:\d+)/.exec(text)?.[1] ?? "";
    const m = /link listening on (\S+)(?: and (\S+))?/.exec(text);
    if (m) link = unix ? m[2] ?? "" : m[1];
  }
  // Keep draining stdout so the child never blocks on a full pipe.
  (async () => {
    while (!(await lines.read()).done) { /* discard */ }
  })().catch(() => {});
  return { proc, http, link, dir };
}

async function counters(http: string): Promise<{ fsyncs: number; records: number }> {
  const text = await (await fetch(`${http}/metrics`)).text();
  const value = (name: string) =>
    Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1] ?? "0");
  return {
    fsyncs: value("trackmirror_backup_journal_fsyncs_total"),
    records: value("trackmirror_backup_records_acknowledged_total"),
  };
}

/** User + system CPU seconds of process `pid`, every thread (Linux /proc; ticks of 10 ms). */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function run(
  backup: Backup,
  ack: AckMode,
  seconds: number,
  depth: number,
  recordBytes: number,
  epoch: number,
) {
  const volume = `bench-${ack}`;
  const link = new LinkClient({
    address: backup.link,
    hostId: "bench",
    ack,
    volumes: [{ name: volume, sizeBytes: volumeBytes, epoch }],
  });
  await link.open();
  const data = randomBytes(seededRandom(epoch), recordBytes);
  const latencies: number[] = [];
  const before = await counters(backup.http);
  const cpuBefore = await cpuSeconds(backup.proc.pid);
  const hostCpuBefore = await cpuSeconds(Deno.pid);
  const rand = seededRandom(7);
  const end = performance.now() + seconds * 1000;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: depth }, async () => {
    while (performance.now() < end) {
      const offset = Math.floor(rand() * (volumeBytes / recordBytes)) * recordBytes;
      const s = performance.now();
      await link.submit(volume, { kind: "write", offset, length: recordBytes, data });
      latencies.push(performance.now() - s);
    }
  }));
  const elapsed = (performance.now() - t0) / 1000;
  await new Promise((r) => setTimeout(r, 200)); // let the last hardening land
  const after = await counters(backup.http);
  const cpu = await cpuSeconds(backup.proc.pid) - cpuBefore;
  const hostCpu = await cpuSeconds(Deno.pid) - hostCpuBefore;
  await link.close();
  latencies.sort((a, b) => a - b);
  const q = (p: number) =>
    latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))];
  const fsyncs = after.fsyncs - before.fsyncs;
  const records = after.records - before.records;
  console.log(
    `${ack.padEnd(8)} ${
      Math.round(latencies.length / elapsed).toString().padStart(7)
    } records/s  ` +
      `${(records / Math.max(1, fsyncs)).toFixed(1).padStart(5)} records/fdatasync  ` +
      `${Math.round(fsyncs / elapsed)} fdatasyncs/s  frames ${link.framesSent} ` +
      `(${(link.recordsSent / Math.max(1, link.framesSent)).toFixed(1)} records/frame)  ` +
      `p50 ${q(0.5).toFixed(3)} ms  p99 ${q(0.99).toFixed(3)} ms  ` +
      `backup CPU ${(cpu * 1e6 / Math.max(1, records)).toFixed(1)} µs a record, ` +
      `host ${(hostCpu * 1e6 / Math.max(1, latencies.length)).toFixed(1)} µs`,
  );
}

async function main(): Promise<void> {
  const flags = parseFlags(Deno.args, {
    seconds: { type: "string" },
    depth: { type: "string" },
    "record-kib": { type: "string" },
    unix: { type: "boolean" },
    "perf-map": { type: "boolean" },
  });
  const seconds = Number(flags.seconds ?? "3");
  const depth = Number(flags.depth ?? "32");
  const recordBytes = Number(flags["record-kib"] ?? "4") * 1024;
  const backup = await startBackup(flags.unix === true, flags["perf-map"] === true);
  try {
    console.log(
      `link ${backup.link}, ${depth} submitters, ${seconds} s each, ` +
        `${recordBytes / 1024} KiB records`,
    );
    await run(backup, "durable", seconds, depth, recordBytes, 1);
    await run(backup, "received", seconds, depth, recordBytes, 1);
  } finally {
    backup.proc.kill("SIGTERM");
    await backup.proc.status;
    await Deno.remove(backup.dir, { recursive: true });
  }
}

if (import.meta.main) await runMain(main);
