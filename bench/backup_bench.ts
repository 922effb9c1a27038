/**
 * Backup journal throughput over real HTTP on loopback: the real backup process (backup/main.ts)
 * on a temp directory, `concurrency` clients in this process each sending one batch at a time,
 * every batch acknowledged only after its group's fdatasync. Reports MB/s of batch bytes and
 * journal fsyncs per batch (from /metrics), for 1 MiB and 64 KiB batches. The applier runs
 * alongside, as in production, applying to a 1 GiB sparse secondary.
 *
 *   deno run -A bench/backup_bench.ts
 */
import { BackupClient, encodeBatch } from "../backup/client.ts";
import { startService } from "../harness/service_process.ts";

/** Batch bytes each case sends. */
export const caseBytes = 128 * 1024 * 1024;
const batchSizes = [1024 * 1024, 64 * 1024];
const concurrencies = [1, 4, 16];
const volumeBytes = 1024 * 1024 * 1024;
/** Distinct batches per size, written round-robin over the volume. */
const bodiesPerSize = 32;

function label(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${bytes / (1024 * 1024)}MiB` : `${bytes / 1024}KiB`;
}

async function fsyncCount(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = /^trackmirror_backup_journal_fsyncs_total (\d+)$/m.exec(text);
  return m ? Number(m[1]) : 0;
}

function bodies(batchBytes: number): Uint8Array[] {
  const data = new Uint8Array(batchBytes);
  for (let i = 0; i < data.length; i += 65536) {
    crypto.getRandomValues(data.subarray(i, Math.min(data.length, i + 65536)));
  }
  return Array.from({ length: bodiesPerSize }, (_, i) =>
    encodeBatch([{
      kind: "write",
      volume: "bench",
      offset: (i * batchBytes * 7) % (volumeBytes - batchBytes),
      length: batchBytes,
      data,
    }]));
}

/** Runs every case; returns `backup_MBps_<size>_c<n>` and `backup_fsyncs_per_batch_<size>_c<n>`. */
export async function benchBackup(): Promise<Record<string, number>> {
  const dataDir = await Deno.makeTempDir({ prefix: "backup_bench_" });
  const proc = await startService("backup/main.ts", [
    "--data",
    dataDir,
    "--journal-bytes-max",
    "4GiB",
  ]);
  const out: Record<string, number> = {};
  try {
    const client = new BackupClient(proc.url, { timeoutMs: 60_000 });
    await client.registerVolume("bench", volumeBytes);
    for (const batchBytes of batchSizes) {
      const ring = bodies(batchBytes);
      const batches = caseBytes / batchBytes;
      for (const concurrency of concurrencies) {
        await client.flush(); // start each case with an empty backlog
        const fsyncsBefore = await fsyncCount(proc.url);
        let next = 0;
        const start = performance.now();
        await Promise.all(Array.from({ length: concurrency }, async () => {
          while (next < batches) {
            const i = next++;
            await client.writeBatch("bench", ring[i % ring.length]);
          }
        }));
        const seconds = (performance.now() - start) / 1000;
        const fsyncs = (await fsyncCount(proc.url)) - fsyncsBefore;
        const key = `${label(batchBytes)}_c${concurrency}`;
        out[`backup_MBps_${key}`] = Math.round((caseBytes / 1e6 / seconds) * 10) / 10;
        out[`backup_fsyncs_per_batch_${key}`] = Math.round((fsyncs / batches) * 1000) / 1000;
      }
    }
  } finally {
    await proc.stop();
    await Deno.remove(dataDir, { recursive: true });
  }
  return out;
}

if (import.meta.main) {
  const results = await benchBackup();
  const rows = [];
  for (const size of batchSizes) {
    for (const c of concurrencies) {
      const key = `${label(size)}_c${c}`;
      rows.push({
        batch: label(size),
        clients: c,
        "MB/s": results[`backup_MBps_${key}`],
        "fsyncs/batch": results[`backup_fsyncs_per_batch_${key}`],
      });
    }
  }
  console.table(rows);
}
