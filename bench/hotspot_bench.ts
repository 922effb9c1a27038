/**
 * Hot-spot workload (issue 10, "Measured"): 80% of the writes to 20% of the volume, for 60 s, with
 * the host mirroring in journal mode (every write to the backup) and in cycle mode (`--mirror
 * cycles --cycle-interval 10s`: marked regions shipped once a cycle). What is measured is what the
 * point of cycle mode is: bytes the host sent to the backup — counted from outside, by TcpProxies
 * on the host's link and on its HTTP calls to the backup (payload and framing both) — and their
 * ratio, journal over cycles.
 *
 * The writes come from fio's nbd engine at a fixed rate (4 KiB random writes, queue depth 8,
 * `random_distribution=zoned:80/20:20/80`, the same seeded offsets in both modes), so both modes
 * get the same writes as long as journal mode keeps up (the table shows what fio did). At the end
 * the remainder is shipped (cycle mode: `POST /v1/volumes/vol0/cycle`) and the secondary must equal
 * the primary (SHA-256), so both modes' bytes bring the secondary to the same image.
 *
 *   deno run -A bench/hotspot_bench.ts [--seconds 60] [--size 256MiB] [--iops 2000]
 *                                      [--interval 10s] [--rounds 1] [--block 4KiB]
 *                                      [--region SIZE (the host's --region-bytes)]
 *                                      [--predict N (the host's --predict-regions)]
 *   deno task bench --only hotspot    (TRACKMIRROR_HOTSPOT_SECONDS, _SIZE, _IOPS, _INTERVAL,
 *                                      _ROUNDS, _BLOCK, _REGION, _PREDICT)
 */
import { startSystem, type System } from "../harness/system.ts";
import { run } from "../harness/tools.ts";
import { parseFlags, runMain } from "../src/flags.ts";
import { formatBytes, parseSize } from "../src/extent.ts";
import { table } from "./table.ts";

export interface HotspotOptions {
  seconds: number;
  sizeBytes: number;
  /** fio's `rate_iops`: the same offered load in both modes. */
  iops: number;
  /** Cycle mode's `--cycle-interval`. */
  interval: string;
  rounds: number;
  /** Bytes of each write. */
  blockBytes: number;
  /** The host's `--region-bytes` (the tracker's and the cycles' unit); undefined: its default. */
  regionBytes?: number;
  /**
   * The host's `--predict-regions`; undefined: its default. A cycle ships every marked region,
   * those marked ahead too, so this changes what cycle mode ships.
   */
  predictRegions?: number;
}

export const hotspotDefaults: HotspotOptions = {
  seconds: 60,
  sizeBytes: 256 * 1024 * 1024,
  iops: 2000,
  interval: "10s",
  rounds: 1,
  blockBytes: 4096,
};

const iodepth = 8;
/** Bound on shipping the remainder and reaching SHA-256 equality after the workload. */
const settleMs = 120_000;
const settlePollMs = 500;
/** fio may run this much longer than its runtime before it is killed. */
const fioSlackMs = 60_000;

type Mode = "journal" | "cycles";

interface ModeResult {
  /** Bytes fio wrote (4 KiB writes it completed). */
  written: number;
  /** Bytes the host sent to the backup: link and HTTP, payload and framing. */
  shipped: number;
  /** Cycles the backup committed (cycle mode; journal mode commits none). */
  cycles: number;
}

/** Total bytes host → backup through the system's proxies. */
function bytesUp(sys: System): number {
  return (sys.linkProxy?.bytesUp ?? 0) + (sys.backupProxy?.bytesUp ?? 0);
}

async function fioHotspot(sys: System, o: HotspotOptions, outputPath: string): Promise<number> {
  const args = [
    "--name=hotspot",
    "--ioengine=nbd",
    `--uri=${sys.nbdUri}`,
    "--rw=randwrite",
    `--bs=${o.blockBytes}`,
    `--iodepth=${iodepth}`,
    "--random_distribution=zoned:80/20:20/80",
    "--norandommap",
    "--randrepeat=1",
    `--rate_iops=${o.iops}`,
    `--runtime=${o.seconds}`,
    "--time_based",
    "--output-format=json",
    `--output=${outputPath}`,
  ];
  const out = await run("fio", args, { timeoutMs: o.seconds * 1000 + fioSlackMs });
  if (out.code !== 0) throw new Error(`fio exited with ${out.code}:\n${out.stdout}${out.stderr}`);
  const job = JSON.parse(await Deno.readTextFile(outputPath)).jobs?.[0];
  if (!job?.write || job.error) throw new Error(`fio report ${outputPath}: job failed`);
  return job.write.io_bytes;
}

/**
 * Until the secondary equals the primary: in cycle mode a cycle is asked for now (again every few
 * polls, in case one was already running and did not take the last writes).
 */
async function settle(sys: System, mode: Mode): Promise<void> {
  const deadline = Date.now() + settleMs;
  for (let poll = 0;; poll++) {
    if (mode === "cycles" && poll % 4 === 0) {
      const res = await fetch(`${sys.host.url}/v1/volumes/${sys.volume}/cycle`, {
        method: "POST",
      });
      await res.body?.cancel();
    }
    await sys.flushBackup();
    if (await sys.sha256Primary() === await sys.sha256Secondary()) return;
    if (Date.now() > deadline) {
      throw new Error(`${mode}: the secondary still differs ${settleMs} ms after the workload`);
    }
    await new Promise((r) => setTimeout(r, settlePollMs));
  }
}

async function runMode(mode: Mode, o: HotspotOptions): Promise<ModeResult> {
  const sys = await startSystem({
    sizeBytes: o.sizeBytes,
    linkProxy: true,
    backupProxy: true,
    hostArgs: [
      ...(mode === "cycles" ? ["--mirror", "cycles", "--cycle-interval", o.interval] : []),
      ...(o.regionBytes === undefined ? [] : ["--region-bytes", String(o.regionBytes)]),
      ...(o.predictRegions === undefined ? [] : ["--predict-regions", String(o.predictRegions)]),
    ],
  });
  try {
    await sys.waitMirroring();
    const before = bytesUp(sys);
    const written = await fioHotspot(sys, o, `${sys.dir}/fio.json`);
    await settle(sys, mode);
    const shipped = bytesUp(sys) - before;
    const status = await (await fetch(`${sys.backup.url}/v1/status`)).json();
    return { written, shipped, cycles: status.cyclesCommitted ?? 0 };
  } finally {
    await sys.stop();
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const spread = (xs: number[]) =>
  xs.length < 2 ? 0 : (Math.max(...xs) - Math.min(...xs)) / median(xs);
const round2 = (x: number) => Math.round(x * 100) / 100;

/** Runs `rounds` rounds of both modes, alternating their order; returns flat numbers (medians). */
export async function benchHotspot(o: HotspotOptions = hotspotOptionsFromEnv()) {
  const results: Record<Mode, ModeResult[]> = { journal: [], cycles: [] };
  const ratios: number[] = [];
  for (let i = 0; i < o.rounds; i++) {
    const order: Mode[] = i % 2 === 0 ? ["journal", "cycles"] : ["cycles", "journal"];
    const got = {} as Record<Mode, ModeResult>;
    for (const mode of order) got[mode] = await runMode(mode, o);
    for (const mode of order) results[mode].push(got[mode]);
    ratios.push(got.journal.shipped / got.cycles.shipped);
  }
  const m = (mode: Mode, k: keyof ModeResult) => median(results[mode].map((r) => r[k]));
  return {
    seconds: o.seconds,
    volume_bytes: o.sizeBytes,
    offered_iops: o.iops,
    cycle_interval: o.interval,
    rounds: o.rounds,
    block_bytes: o.blockBytes,
    region_bytes: o.regionBytes ?? 0,
    predict_regions: o.predictRegions ?? -1,
    journal_written_bytes: m("journal", "written"),
    journal_shipped_bytes: m("journal", "shipped"),
    cycles_written_bytes: m("cycles", "written"),
    cycles_shipped_bytes: m("cycles", "shipped"),
    cycles_committed: m("cycles", "cycles"),
    journal_shipped_per_written: round2(m("journal", "shipped") / m("journal", "written")),
    cycles_shipped_per_written: round2(m("cycles", "shipped") / m("cycles", "written")),
    shipped_ratio: round2(median(ratios)),
    shipped_ratio_spread: round2(spread(ratios)),
  };
}

export function formatHotspot(r: Awaited<ReturnType<typeof benchHotspot>>): string {
  return [
    `hot spot: ${formatBytes(r.block_bytes)} random writes, 80% to 20% of a ` +
    `${formatBytes(r.volume_bytes)} volume, ${r.offered_iops} IOPS offered, qd ${iodepth}, ` +
    `${r.seconds} s, regions ${r.region_bytes ? formatBytes(r.region_bytes) : "default"}, ` +
    `predict-regions ${r.predict_regions < 0 ? "default" : r.predict_regions}; bytes ` +
    `the host sent to the backup (link and HTTP, counted by proxies), medians of ${r.rounds} ` +
    "round(s)",
    table(["mode", "written", "shipped", "shipped/written", "cycles"], [
      [
        "journal",
        formatBytes(r.journal_written_bytes),
        formatBytes(r.journal_shipped_bytes),
        r.journal_shipped_per_written,
        "",
      ],
      [
        `cycles (${r.cycle_interval})`,
        formatBytes(r.cycles_written_bytes),
        formatBytes(r.cycles_shipped_bytes),
        r.cycles_shipped_per_written,
        String(r.cycles_committed),
      ],
    ]),
    `journal / cycles shipped: ${r.shipped_ratio}` +
    (r.rounds > 1 ? ` (spread ${Math.round(r.shipped_ratio_spread * 100)}%)` : ""),
  ].join("\n");
}

const optionNames = [
  "seconds",
  "size",
  "iops",
  "interval",
  "rounds",
  "block",
  "region",
  "predict",
] as const;
type OptionTexts = Partial<Record<typeof optionNames[number], string>>;

/** Options from the environment (for `deno task bench`, whose flags are the NBD bench's). */
export function hotspotOptionsFromEnv(): HotspotOptions {
  const env = (k: string) => Deno.env.get(`TRACKMIRROR_HOTSPOT_${k.toUpperCase()}`);
  const texts: OptionTexts = {};
  for (const k of optionNames) texts[k] = env(k);
  return hotspotOptions(texts, (k) => `TRACKMIRROR_HOTSPOT_${k.toUpperCase()}`);
}

/** Parses the options' texts; an error names the bad value and where it came from (`label`). */
function hotspotOptions(v: OptionTexts, label: (k: string) => string): HotspotOptions {
  const count = (k: "predict") => {
    const text = v[k]!;
    if (!/^\d+$/.test(text)) throw new RangeError(`${label(k)} "${text}" must be a whole number`);
    return Number(text);
  };
  const positive = (k: "seconds" | "iops" | "rounds") => {
    const text = v[k];
    if (text === undefined) return hotspotDefaults[k];
    const n = Number(text);
    if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < 1) {
      throw new RangeError(`${label(k)} "${text}" must be a whole number, at least 1`);
    }
    return n;
  };
  const size = (k: "size" | "block" | "region") => {
    const text = v[k];
    if (text === undefined) return undefined;
    try {
      return parseSize(text);
    } catch (err) {
      throw new RangeError(`${label(k)}: ${(err as Error).message}`);
    }
  };
  const interval = v.interval ?? hotspotDefaults.interval;
  if (!/^\d+(ms|s|m)$/.test(interval)) {
    throw new RangeError(`${label("interval")} "${interval}" must be a duration like 500ms or 10s`);
  }
  return {
    seconds: positive("seconds"),
    sizeBytes: size("size") ?? hotspotDefaults.sizeBytes,
    iops: positive("iops"),
    interval,
    rounds: positive("rounds"),
    blockBytes: size("block") ?? hotspotDefaults.blockBytes,
    regionBytes: size("region"),
    predictRegions: v.predict === undefined ? undefined : count("predict"),
  };
}

if (import.meta.main) {
  await runMain(async () => {
    const flags = parseFlags(Deno.args, {
      seconds: { type: "string" },
      size: { type: "string" },
      iops: { type: "string" },
      interval: { type: "string" },
      rounds: { type: "string" },
      block: { type: "string" },
      region: { type: "string" },
      predict: { type: "string" },
    });
    const result = await benchHotspot(hotspotOptions(flags, (k) => `--${k}`));
    console.log(formatHotspot(result));
  });
}
