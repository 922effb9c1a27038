/**
 * The machine's own floors, with no trackmirror code in the measured path (fio and plain Deno
 * only), so a missed NBD target can be set beside what this disk and CPU allow:
 *
 *   F1  buffered 4 KiB random pwrite into a sparse 1 GiB file, one thread: IOPS and CPU µs a
 *       write (the kernel's cost of one page-cache copy; a mirrored write makes three)
 *   F2  journal-like group commit, quiet: sequential 48 KiB writes (about one group of 11-12 4 KiB
 *       records) into a preallocated, pre-zeroed 256 MiB file, fdatasync after each, qd1
 *   F3  F2 while a "secondary" (4 KiB randwrite at 16000 IOPS, fsync every 16384 writes: the
 *       applier's checkpoint) and a "primary" (4 KiB randwrite at 16000 IOPS, no sync) write
 *       their own sparse 1 GiB files
 *   F4  1 MiB sequential: journal (fdatasync every 8 MiB) beside a secondary (fsync every 64 MiB)
 *       and a primary (no sync); and the journal alone
 *   F5  Deno KV durable commit at depth 1 (the tracker's floor)
 *   F6  loopback HTTP POST of 100 bytes answered 204, depth 1, server in this process and in a
 *       child process (the host -> tracker mark's transport)
 *
 * Files live in a fresh temp dir made the way the NBD bench makes its images' (Deno.makeTempDir,
 * so under $TMPDIR or /tmp), removed at the end. Sparse files are made here with truncate (no
 * blocks) and fio runs with fallocate=none on a file of exactly its size, so it neither lays out
 * nor allocates them; the run checks they stayed sparse.
 *
 *   deno task bench --only floors   (floors_table.ts prints the table)
 */
import { run } from "../harness/tools.ts";
import { fioJobFile, type FioJobReport, type FioSection, runFioJobs } from "./floors_fio.ts";
import { httpChildProcess, httpInProcess, kvCommits, type LoopStats } from "./floors_deno.ts";

/** Seconds each fio measurement runs (no ramp, so fio's CPU figures cover exactly the writes). */
export const fioRuntimeSec = 4;
/** Milliseconds of the KV and HTTP loops. */
export const kvMs = 4000;
export const httpMs = 3000;
/** Sparse files: the NBD bench's image size. */
export const sparseBytes = 1024 * 1024 * 1024;
/** The journal-like file: preallocated and written with zeros before any measurement. */
export const journalBytes = 256 * 1024 * 1024;
/** One journal group: about 11-12 records of 4 KiB with their headers. */
export const groupBytes = 48 * 1024;
/** Rate of F3's secondary and primary: the mirror's other two copies of a 16k IOPS workload. */
export const mirrorIops = 16000;
/** F3's secondary fsyncs every this many writes (64 MiB of 4 KiB: the applier's checkpoint). */
const checkpointWrites = 16384;
/**
 * fio's rate limiter busy-waits any gap shorter than the timer's granularity (50 µs timer slack
 * here), and 16000 IOPS leaves ~60 µs a write: paced that way a job spun one CPU at 98% user
 * time. So F3's jobs sleep 600 µs after every 16 writes (thinktime) under the rate_iops cap,
 * which leaves room to catch up after a checkpoint fsync: alone, the secondary job held 15996
 * IOPS with 2% user CPU (800 µs: 15488 IOPS).
 */
const paceBlocks = 16;
const paceSleepUs = 600;
/** F4: 1 MiB writes; journal fdatasync every 8 (8 MiB), secondary fsync every 64 (64 MiB). */
const bigBytes = 1024 * 1024;
const journalSyncEvery = 8;
const secondarySyncEvery = 64;
/** Bytes written at a time while pre-zeroing the journal file. */
const zeroStepBytes = 8 * 1024 * 1024;

/** The floors bench's results: flat numbers (`f1_iops`, ...), and the fio that measured them. */
export interface FloorsResult {
  fio: string;
  floors: Record<string, number>;
}

const global: FioSection = {
  ioengine: "psync",
  fallocate: "none",
  time_based: true,
  runtime: fioRuntimeSec,
};
const random4k = (file: string): FioSection => ({
  filename: file,
  size: sparseBytes,
  rw: "randwrite",
  bs: 4096,
});
const paced = { rate_iops: mirrorIops, thinktime: paceSleepUs, thinktime_blocks: paceBlocks };
const journalGroups: FioSection = {
  filename: "journal.img",
  size: journalBytes,
  rw: "write",
  bs: groupBytes,
  fdatasync: 1,
};
const journalBig: FioSection = {
  filename: "journal.img",
  size: journalBytes,
  rw: "write",
  bs: bigBytes,
  fdatasync: journalSyncEvery,
};
const sequentialBig = (file: string): FioSection => ({
  filename: file,
  size: sparseBytes,
  rw: "write",
  bs: bigBytes,
});

/** Creates `path` as a sparse file of `bytes` and checks it holds no blocks. */
async function sparseFile(path: string, bytes: number): Promise<void> {
  await Deno.writeFile(path, new Uint8Array());
  await Deno.truncate(path, bytes);
  const { blocks } = await Deno.stat(path);
  if (blocks !== 0) throw new Error(`Sparse file ${path} holds ${blocks} blocks`);
}

/**
 * Share of the written bytes a sparse file may hold beyond them: ext4's extent tree of scattered
 * 4 KiB writes (measured: 1.6 MB beside 223 MB written, 0.7%).
 */
const extentTreeShareMax = 0.05;

/** Checks fio did not lay out `path`: it holds little more than the job wrote. */
async function assertSparse(path: string, job: FioJobReport, blockBytes: number): Promise<void> {
  const allocated = ((await Deno.stat(path)).blocks ?? 0) * 512;
  const written = job.writeIos * blockBytes;
  if (allocated > written * (1 + extentTreeShareMax) + bigBytes) {
    throw new Error(`${path} holds ${allocated} bytes after fio wrote ${written}: laid out?`);
  }
}

/** Writes `bytes` of zeros to `path` and fdatasyncs it: a preallocated journal. */
async function zeroedFile(path: string, bytes: number): Promise<void> {
  const file = await Deno.open(path, { write: true, create: true, truncate: true });
  try {
    const zeros = new Uint8Array(zeroStepBytes);
    for (let off = 0; off < bytes; off += zeroStepBytes) {
      const piece = zeros.subarray(0, Math.min(zeroStepBytes, bytes - off));
      for (let done = 0; done < piece.length;) done += await file.write(piece.subarray(done));
    }
    await file.syncData();
  } finally {
    file.close();
  }
}

/** Removes the sparse files (their dirty pages go with them) and syncs, so runs don't overlap. */
async function settle(dir: string, files: string[]): Promise<void> {
  for (const f of files) await Deno.remove(`${dir}/${f}`);
  const out = await run("sync", []);
  if (out.code !== 0) throw new Error(`sync exited with ${out.code}: ${out.stderr}`);
}

const r1 = (x: number) => Math.round(x * 10) / 10;

function loopNumbers(prefix: string, s: LoopStats): Record<string, number> {
  return {
    [`${prefix}_per_s`]: Math.round(s.perSec),
    [`${prefix}_p50_us`]: r1(s.p50Us),
    [`${prefix}_p99_us`]: r1(s.p99Us),
  };
}

function syncNumbers(prefix: string, job: FioJobReport): Record<string, number> {
  if (!job.sync) throw new Error(`${prefix}: the journal job made no fdatasync`);
  return {
    [`${prefix}_syncs_per_s`]: Math.round(job.sync.perSec),
    [`${prefix}_sync_p50_us`]: r1(job.sync.p50Us),
    [`${prefix}_sync_p99_us`]: r1(job.sync.p99Us),
  };
}

/** Runs F1-F6 in a fresh temp dir; see the file comment. */
export async function benchFloors(log = (line: string) => console.error(line)): Promise<
  FloorsResult
> {
  const dir = await Deno.makeTempDir({ prefix: "floors_bench_" });
  const t0 = performance.now();
  const step = (line: string) =>
    log(`floors: ${((performance.now() - t0) / 1000).toFixed(1)} s: ${line}`);
  const fio = (name: string, jobs: Record<string, FioSection>) =>
    runFioJobs(dir, name, fioJobFile(global, jobs), fioRuntimeSec);
  try {
    step(`files in ${dir}`);
    await zeroedFile(`${dir}/journal.img`, journalBytes);

    step("F1 4 KiB buffered random pwrite");
    await sparseFile(`${dir}/primary.img`, sparseBytes);
    const f1 = await fio("f1", { primary: random4k("primary.img") });
    const p1 = f1.jobs.primary;
    await assertSparse(`${dir}/primary.img`, p1, 4096);
    await settle(dir, ["primary.img"]);

    step("F2 48 KiB + fdatasync, quiet");
    const f2 = await fio("f2", { journal: journalGroups });

    step("F3 48 KiB + fdatasync beside two paced 4 KiB writers");
    await sparseFile(`${dir}/secondary.img`, sparseBytes);
    await sparseFile(`${dir}/primary.img`, sparseBytes);
    const f3 = await fio("f3", {
      journal: journalGroups,
      secondary: { ...random4k("secondary.img"), ...paced, fsync: checkpointWrites },
      primary: { ...random4k("primary.img"), ...paced },
    });
    await assertSparse(`${dir}/secondary.img`, f3.jobs.secondary, 4096);
    await assertSparse(`${dir}/primary.img`, f3.jobs.primary, 4096);
    await settle(dir, ["secondary.img", "primary.img"]);

    step("F4 1 MiB sequential, journal alone then beside two writers");
    const f4a = await fio("f4a", { journal: journalBig });
    await sparseFile(`${dir}/secondary.img`, sparseBytes);
    await sparseFile(`${dir}/primary.img`, sparseBytes);
    const f4 = await fio("f4", {
      journal: journalBig,
      secondary: { ...sequentialBig("secondary.img"), fsync: secondarySyncEvery },
      primary: sequentialBig("primary.img"),
    });
    await settle(dir, ["secondary.img", "primary.img"]);

    step("F5 Deno KV commit, depth 1");
    const f5 = await kvCommits(`${dir}/floor.kv`, kvMs);
    step("F6 loopback HTTP round trip, depth 1");
    const f6one = await httpInProcess(httpMs);
    const f6two = await httpChildProcess(httpMs);

    const j4 = f4.jobs;
    const floors = {
      f1_iops: Math.round(p1.writeIops),
      f1_cpu_us_per_write: r1(p1.cpuUsPerWrite),
      f1_cpu_percent: r1(p1.cpuPercent),
      ...syncNumbers("f2", f2.jobs.journal),
      ...syncNumbers("f3_journal", f3.jobs.journal),
      f3_secondary_iops: Math.round(f3.jobs.secondary.writeIops),
      f3_secondary_cpu_percent: r1(f3.jobs.secondary.cpuPercent),
      f3_primary_iops: Math.round(f3.jobs.primary.writeIops),
      f3_primary_cpu_percent: r1(f3.jobs.primary.cpuPercent),
      f4_journal_alone_MBps: r1(f4a.jobs.journal.writeMBps),
      f4_journal_MBps: r1(j4.journal.writeMBps),
      f4_secondary_MBps: r1(j4.secondary.writeMBps),
      f4_primary_MBps: r1(j4.primary.writeMBps),
      f4_total_MBps: r1(j4.journal.writeMBps + j4.secondary.writeMBps + j4.primary.writeMBps),
      ...loopNumbers("f5_commits", f5),
      ...loopNumbers("f6_one_process_round_trips", f6one),
      ...loopNumbers("f6_two_processes_round_trips", f6two),
    };
    return { fio: f1.version, floors };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
