/**
 * Checksum resync against a full copy (issue 9): the whole system as real processes (tracker,
 * backup, host agent) with a 1 GiB volume whose primary and secondary images hold the same data
 * except 1% of the regions, rewritten on the secondary behind the services' backs (no mark
 * anywhere). Then, in one run:
 *
 *   - checksum: a checksum resync (`reconstruct --checksum`'s request) compares every region and
 *     ships those that differ; reported: bytes shipped / bytes of the differing regions (target
 *     ≤ 1.1), seconds, and whether the images' SHA-256 agree afterwards;
 *   - full copy: every region marked at the tracker and a plain resync, which copies the volume.
 *
 *   deno run -A bench/checksum_bench.ts   (or deno task bench --only checksum)
 */
import { HostClient } from "../host/client.ts";
import { startSystem, type System } from "../harness/system.ts";
import { TrackerClient } from "../tracker/client.ts";
import { formatBytes } from "../src/extent.ts";
import type { ResyncMode, ResyncProgress } from "../src/host_schemas.ts";
import { randomBytes, seededRandom } from "../src/random.ts";
import { table } from "./table.ts";

const region = 64 * 1024;
/** Volume size of the bench. */
export const checksumVolumeBytes = 1024 * 1024 * 1024;
/** Share of the regions made different on the secondary. */
export const differingShare = 0.01;
/** Bytes written to the images at once while filling them. */
const fillStepBytes = 8 * 1024 * 1024;
const pollMs = 100;

/** Fills both images with the same data (a random 8 MiB pattern, varied per step). */
async function fillImages(sys: System): Promise<void> {
  const pattern = randomBytes(seededRandom(11), fillStepBytes);
  const files = await Promise.all(
    [sys.primaryPath, sys.secondaryPath].map((p) => Deno.open(p, { write: true })),
  );
  try {
    for (let off = 0; off < sys.sizeBytes; off += fillStepBytes) {
      pattern[0] = off / fillStepBytes; // no two steps alike
      for (const f of files) {
        await f.seek(off, Deno.SeekMode.Start);
        const piece = pattern.subarray(0, Math.min(fillStepBytes, sys.sizeBytes - off));
        for (let done = 0; done < piece.length;) done += await f.write(piece.subarray(done));
      }
    }
    for (const f of files) await f.syncData();
  } finally {
    for (const f of files) f.close();
  }
}

/** Rewrites `share` of the secondary's regions with other data; returns how many. */
async function damageSecondary(sys: System, share: number): Promise<number> {
  const regions = sys.sizeBytes / region;
  const rand = seededRandom(12);
  const chosen = new Set<number>();
  const wanted = Math.round(regions * share);
  while (chosen.size < wanted) chosen.add(Math.floor(rand() * regions));
  const file = await Deno.open(sys.secondaryPath, { write: true });
  try {
    for (const i of chosen) {
      await file.seek(i * region, Deno.SeekMode.Start);
      const data = randomBytes(rand, region);
      for (let done = 0; done < data.length;) done += await file.write(data.subarray(done));
    }
    await file.syncData();
  } finally {
    file.close();
  }
  return chosen.size;
}

/** Starts a resync of the volume in `mode` and polls it to the end. */
async function resync(sys: System, mode: ResyncMode): Promise<ResyncProgress> {
  const host = new HostClient(sys.host.url, { timeoutMs: 60_000 });
  let p = await host.startResync(sys.volume, { mode });
  while (p.state === "running") {
    await new Promise((r) => setTimeout(r, pollMs));
    p = await host.resyncProgress(sys.volume);
  }
  if (p.state !== "done") throw new Error(`The ${mode} resync ended ${p.state}: ${p.error}`);
  return p;
}

const seconds = (p: ResyncProgress) => ((p.finishedAt ?? 0) - (p.startedAt ?? 0)) / 1000;
const round = (x: number, digits = 2) => Math.round(x * 10 ** digits) / 10 ** digits;

/** Runs the bench; returns flat numbers (`checksum_*`, `full_copy_*`). */
export async function benchChecksum(
  sizeBytes = checksumVolumeBytes,
): Promise<Record<string, number>> {
  const sys = await startSystem({ sizeBytes });
  try {
    await sys.waitMirroring();
    await fillImages(sys);
    const differing = await damageSecondary(sys, differingShare);
    const differingBytes = differing * region;

    const csum = await resync(sys, "checksum");
    await sys.flushBackup();
    const equal = (await sys.sha256Primary()) === (await sys.sha256Secondary());

    const tracker = new TrackerClient(sys.tracker.url);
    await tracker.track({
      volume: sys.volume,
      host: "host0",
      extents: [{ offset: 0, length: sizeBytes }],
    });
    const full = await resync(sys, "plain");
    await sys.flushBackup();

    return {
      volume_bytes: sizeBytes,
      regions: sizeBytes / region,
      regions_differing: differing,
      bytes_differing: differingBytes,
      checksum_regions_compared: csum.regionsCompared ?? 0,
      checksum_regions_shipped: csum.regionsShipped ?? 0,
      checksum_bytes_shipped: csum.bytesShipped ?? 0,
      checksum_shipped_per_differing: round((csum.bytesShipped ?? 0) / differingBytes, 3),
      checksum_seconds: round(seconds(csum)),
      checksum_MBps_compared: round(sizeBytes / 1e6 / seconds(csum), 1),
      checksum_images_equal: equal ? 1 : 0,
      full_copy_bytes_shipped: full.bytesDone,
      full_copy_seconds: round(seconds(full)),
      full_copy_MBps: round(full.bytesDone / 1e6 / seconds(full), 1),
      checksum_time_vs_full_copy: round(seconds(csum) / seconds(full), 3),
    };
  } finally {
    await sys.stop();
  }
}

export function formatChecksum(r: Record<string, number>): string {
  return [
    `checksum resync vs full copy: ${formatBytes(r.volume_bytes)} volume, ${r.regions} regions ` +
    `of 64 KiB, ${r.regions_differing} (1%) different on the secondary with no mark; real ` +
    "processes on loopback, one shared machine: rough numbers",
    table(["", "bytes shipped", "shipped / differing", "seconds", "MB/s", "images equal"], [
      [
        "checksum",
        formatBytes(r.checksum_bytes_shipped),
        r.checksum_shipped_per_differing,
        r.checksum_seconds,
        `${r.checksum_MBps_compared} compared`,
        r.checksum_images_equal ? "yes" : "NO",
      ],
      [
        "full copy",
        formatBytes(r.full_copy_bytes_shipped),
        round(r.full_copy_bytes_shipped / r.bytes_differing, 1),
        r.full_copy_seconds,
        `${r.full_copy_MBps} copied`,
        "",
      ],
    ]),
  ].join("\n");
}

if (import.meta.main) {
  const result = await benchChecksum();
  console.log(formatChecksum(result));
}
