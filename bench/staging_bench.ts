/**
 * The cost of consistency (issue 10): resync MB/s with staging (the default: one cycle, copies
 * and writes staged at the backup and applied at the commit) against `--unstaged-resync` (copies
 * straight into the secondary, as before), in one run. Each round starts the whole system as
 * real processes, takes the backup away, writes `dirtyBytes` through the host (marked at the
 * tracker), brings the backup back and resyncs. Reported per mode (medians over the rounds, the
 * modes alternating): the resync's own MB/s (until the commit is durable), and end to end, until
 * the backup has applied everything (`POST /v1/flush`: for staging, the commit's apply).
 *
 *   deno run -A bench/staging_bench.ts   (or deno task bench --only staging)
 */
import { HostClient } from "../host/client.ts";
import { startSystem } from "../harness/system.ts";
import { formatBytes } from "../src/extent.ts";
import { table } from "./table.ts";

/** Volume of each round, and how much of it is dirty when the resync starts. */
export const stagingVolumeBytes = 256 * 1024 * 1024;
export const stagingDirtyBytes = 192 * 1024 * 1024;
const writeBytes = 4 * 1024 * 1024;
const pollMs = 20;

interface RoundResult {
  resyncMBps: number;
  endToEndMBps: number;
}

async function round(unstaged: boolean): Promise<RoundResult> {
  const sys = await startSystem({
    sizeBytes: stagingVolumeBytes,
    hostArgs: unstaged ? ["--unstaged-resync"] : [],
  });
  try {
    await sys.waitMirroring();
    const host = new HostClient(sys.host.url, { timeoutMs: 60_000 });
    await sys.backup.kill();
    const data = new Uint8Array(writeBytes).fill(7);
    for (let off = 0; off < stagingDirtyBytes; off += writeBytes) {
      data[0] = off / writeBytes;
      await host.write(sys.volume, off, data);
    }
    await sys.restartBackup();
    await sys.waitMirroring();
    const started = performance.now();
    let p = await host.startResync(sys.volume);
    while (p.state === "running") {
      await new Promise((r) => setTimeout(r, pollMs));
      p = await host.resyncProgress(sys.volume);
    }
    if (p.state !== "done") throw new Error(`The resync ended ${p.state}: ${p.error}`);
    const resynced = performance.now();
    await sys.flushBackup();
    const applied = performance.now();
    if (await sys.sha256Primary() !== await sys.sha256Secondary()) {
      throw new Error("Primary and secondary differ after the resync");
    }
    return {
      resyncMBps: p.bytesDone / 1e6 / ((resynced - started) / 1000),
      endToEndMBps: p.bytesDone / 1e6 / ((applied - started) / 1000),
    };
  } finally {
    await sys.stop();
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const round1 = (x: number) => Math.round(x * 10) / 10;

/** Runs `rounds` rounds of each mode, alternating; returns flat numbers. */
export async function benchStaging(rounds = 3): Promise<Record<string, number>> {
  const staged: RoundResult[] = [];
  const unstaged: RoundResult[] = [];
  for (let i = 0; i < rounds; i++) {
    for (const u of i % 2 === 0 ? [false, true] : [true, false]) {
      (u ? unstaged : staged).push(await round(u));
    }
  }
  const s = median(staged.map((r) => r.resyncMBps));
  const u = median(unstaged.map((r) => r.resyncMBps));
  const se = median(staged.map((r) => r.endToEndMBps));
  const ue = median(unstaged.map((r) => r.endToEndMBps));
  return {
    dirty_bytes: stagingDirtyBytes,
    rounds,
    staged_resync_MBps: round1(s),
    unstaged_resync_MBps: round1(u),
    staged_end_to_end_MBps: round1(se),
    unstaged_end_to_end_MBps: round1(ue),
    resync_ratio: Math.round((s / u) * 100) / 100,
    end_to_end_ratio: Math.round((se / ue) * 100) / 100,
  };
}

export function formatStaging(r: Record<string, number>): string {
  return [
    `cost of consistency: resync of ${formatBytes(r.dirty_bytes)} marked, staged vs ` +
    `--unstaged-resync, medians of ${r.rounds} rounds each (target ratio >= 0.7); real ` +
    "processes on loopback, one shared machine: rough numbers",
    table(["", "resync MB/s", "end to end MB/s"], [
      ["staged (cycle)", r.staged_resync_MBps, r.staged_end_to_end_MBps],
      ["unstaged", r.unstaged_resync_MBps, r.unstaged_end_to_end_MBps],
      ["ratio", r.resync_ratio, r.end_to_end_ratio],
    ]),
  ].join("\n");
}

if (import.meta.main) {
  const result = await benchStaging();
  console.log(formatStaging(result));
}
