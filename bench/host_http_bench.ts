/**
 * Forked writes per second through the host agent's HTTP API, with the real tracker, backup and host
 * processes on loopback: `clientsConcurrent` clients each PUT 4 KiB at random aligned offsets for
 * `caseMs`, first with the backup online (mirroring), then with it killed (tracking), and for
 * comparison with forking off (`--no-fork`: straight to the primary).
 *
 *   deno run -A bench/host_http_bench.ts [--cpu-prof-dir DIR]
 *
 * `--cpu-prof-dir` profiles tracker, backup and host agent of the online case (`--cpu-prof`;
 * summarize with bench/cpu_profile.ts).
 */
import { parseArgs } from "node:util";
import { HostClient } from "../host/client.ts";
import { seededRandom } from "../src/random.ts";
import { startSystem, type System } from "../harness/system.ts";

export const clientsConcurrent = 32;
export const caseMs = 3000;
const blockBytes = 4096;

/** User + system CPU seconds of process `pid`, every thread (Linux /proc; ticks of 10 ms). */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/**
 * CPU µs a write of each process while `drive` ran: the bench's own client (fetch, in this
 * process), the host agent, the backup and the tracker, all on the same cores.
 */
async function cpuPerWrite(
  sys: System,
  run: () => Promise<{ writes: number }>,
): Promise<Record<"client" | "host" | "backup" | "tracker", number>> {
  const pids = {
    client: Deno.pid,
    host: sys.host.child.pid,
    backup: sys.backup.child.pid,
    tracker: sys.tracker.child.pid,
  };
  const read = async () =>
    Object.fromEntries(
      await Promise.all(Object.entries(pids).map(async ([k, pid]) => [k, await cpuSeconds(pid)])),
    ) as Record<keyof typeof pids, number>;
  const before = await read();
  const { writes } = await run();
  const after = await read();
  const per = (k: keyof typeof pids) =>
    Math.round((after[k] - before[k]) * 1e6 / Math.max(1, writes));
  return {
    client: per("client"),
    host: per("host"),
    backup: per("backup"),
    tracker: per("tracker"),
  };
}

async function drive(
  sys: System,
  seed: number,
): Promise<{ writesPerSec: number; failed: number; writes: number }> {
  const host = new HostClient(sys.host.url);
  const data = new Uint8Array(blockBytes).fill(0xab);
  const blocks = sys.sizeBytes / blockBytes;
  let writes = 0;
  let failed = 0;
  const deadline = performance.now() + caseMs;
  const client = async (c: number) => {
    const rand = seededRandom(seed + c);
    while (performance.now() < deadline) {
      try {
        await host.write(sys.volume, Math.floor(rand() * blocks) * blockBytes, data);
        writes++;
      } catch {
        failed++;
      }
    }
  };
  const start = performance.now();
  await Promise.all(Array.from({ length: clientsConcurrent }, (_, c) => client(c)));
  return {
    writesPerSec: Math.round(writes / ((performance.now() - start) / 1000)),
    failed,
    writes,
  };
}

/** Runs the three cases; returns writes/s for each. */
export async function benchHostHttp(
  opts: { cpuProfDir?: string } = {},
): Promise<Record<string, number>> {
  const results: Record<string, number> = {};
  const sizeBytes = 256 * 1024 * 1024;
  let sys = await startSystem({ sizeBytes, hostArgs: ["--no-fork"] });
  try {
    results["host_http_4k_writes_per_sec_no_fork"] = (await drive(sys, 1)).writesPerSec;
  } finally {
    await sys.stop();
  }
  sys = await startSystem({ sizeBytes, cpuProfDir: opts.cpuProfDir });
  try {
    await sys.waitMirroring();
    let online = { writesPerSec: 0, failed: 0, writes: 0 };
    const cpu = await cpuPerWrite(sys, async () => online = await drive(sys, 2));
    results["host_http_4k_writes_per_sec_backup_online"] = online.writesPerSec;
    for (const [k, us] of Object.entries(cpu)) {
      results[`host_http_online_cpu_us_per_write_${k}`] = us;
    }
    const status = await (await fetch(`${sys.host.url}/v1/status`)).json();
    const v = status.volumes[0];
    results["host_http_writes_per_backup_batch"] = Number(
      (v.writes.viaBackup / Math.max(1, v.backupBatches)).toFixed(1),
    );
    await sys.backup.kill();
    const offline = await drive(sys, 3);
    results["host_http_4k_writes_per_sec_backup_offline"] = offline.writesPerSec;
    const after = (await (await fetch(`${sys.host.url}/v1/status`)).json()).volumes[0];
    results["host_http_tracker_commands_per_1000_offline_writes"] = Math.round(
      (after.trackerCommands / Math.max(1, after.writes.viaTracker)) * 1000,
    );
  } finally {
    await sys.stop();
  }
  return results;
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { "cpu-prof-dir": { type: "string" } } });
  const results = await benchHostHttp({ cpuProfDir: values["cpu-prof-dir"] });
  console.table(results);
}
