/**
 * `deno task bench --only tracker-etcd`: the tracker over etcd against the tracker over Deno KV,
 * over real HTTP on loopback, everything in real processes (a 3-member etcd cluster from
 * harness/etcd_cluster.ts, data dirs in a temp dir).
 *
 * Closed loop, `clientsConcurrent` clients each sending one 4 KiB mark at a time for `caseMs`,
 * spread over one volume's 1024 segments: commands/s and p50/p99 latency of
 *   kv    — one tracker over Deno KV (a temp file)
 *   etcd1 — one tracker over the etcd cluster
 *   etcd2 — two trackers over the same cluster, half the clients each, one volume (so they race:
 *           conflicts per command are shown)
 * Open loop, a simulated fleet: `fleetHosts` hosts × `fleetVolumes` volumes (light clients in this
 * process, each host on one of two trackers over etcd), every host marking a random region of a
 * random one of its volumes at a fixed total rate for `fleetStepMs`; the rate doubles from
 * `fleetRateStart` until a step has an error or falls short of 95 % of its rate (or a mark takes
 * longer than `fleetLatencyMsMax`); the highest clean rate is reported.
 *
 * Timings are this command's output only; no test asserts on them.
 */
import { haveEtcd, startEtcdCluster } from "../harness/etcd_cluster.ts";
import { type ServiceProcess, startService } from "../harness/service_process.ts";
import { seededRandom } from "../src/random.ts";
import { TrackerClient } from "../tracker/client.ts";
import { table } from "./table.ts";

/** Concurrent clients of the closed-loop cases. */
export const clientsConcurrent = 64;
/** How long each closed-loop case runs. */
export const caseMs = 4000;
/** Simulated fleet: hosts, and volumes of each. */
export const fleetHosts = 100;
export const fleetVolumes = 10;
/** First open-loop rate of the fleet (commands/s), doubled every step. */
export const fleetRateStart = 100;
/** Highest rate tried. */
export const fleetRateMax = 25_600;
/** How long each rate is held. */
export const fleetStepMs = 3000;
/** A mark slower than this counts as the fleet falling behind. */
export const fleetLatencyMsMax = 1000;
/** Marks in flight at once in the fleet (a step that needs more is not sustained). */
const fleetInFlightMax = 4096;

const regionBytes = 64 * 1024;
const volumeBytes = 1024 * 1024 * regionBytes; // 64 GiB: 1024 segments
const fleetVolumeBytes = 1024 * regionBytes * 16; // 1 GiB: 16 segments

async function register(url: string, name: string, sizeBytes: number, host: string) {
  await new TrackerClient(url).registerVolume(name, {
    sizeBytes,
    regionBytes,
    ownerHost: host,
    ownerUrl: "http://127.0.0.1:1",
    leaseMs: 24 * 3600 * 1000,
  });
}

async function mark(url: string, volume: string, host: string, region: number): Promise<void> {
  const res = await fetch(`${url}/v1/track`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      volume,
      host,
      extents: [{ offset: region * regionBytes, length: 4096 }],
    }),
  });
  if (!res.ok) throw new Error(`track answered ${res.status}: ${await res.text()}`);
  await res.body?.cancel();
}

/** A counter's value in a tracker's /metrics (0 when absent). */
async function counter(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = new RegExp(`^${name} (\\d+)`, "m").exec(text);
  return m ? Number(m[1]) : 0;
}

function quantile(sorted: number[], q: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : NaN;
}

interface ClosedResult {
  cmdsPerS: number;
  p50Ms: number;
  p99Ms: number;
  atomicsPerCmd: number;
  conflictsPerCmd: number;
}

/** The closed-loop case over `urls` (clients split evenly). */
async function closedLoop(urls: string[]): Promise<ClosedResult> {
  await register(urls[0], "vol", volumeBytes, "bench");
  const latencies: number[] = [];
  const deadline = performance.now() + caseMs;
  const started = performance.now();
  await Promise.all(Array.from({ length: clientsConcurrent }, async (_, client) => {
    const next = seededRandom(client + 1);
    const url = urls[client % urls.length];
    while (performance.now() < deadline) {
      const t = performance.now();
      await mark(url, "vol", "bench", Math.floor(next() * (volumeBytes / regionBytes)));
      latencies.push(performance.now() - t);
    }
  }));
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  let atomics = 0;
  let conflicts = 0;
  for (const url of urls) {
    atomics += await counter(url, "trackmirror_tracker_kv_atomics_total");
    conflicts += await counter(url, "trackmirror_tracker_commit_conflicts_total");
  }
  return {
    cmdsPerS: Math.round(latencies.length / seconds),
    p50Ms: Number(quantile(latencies, 0.5).toFixed(1)),
    p99Ms: Number(quantile(latencies, 0.99).toFixed(1)),
    atomicsPerCmd: Number((atomics / latencies.length).toFixed(4)),
    conflictsPerCmd: Number((conflicts / latencies.length).toFixed(4)),
  };
}

interface FleetStep {
  rate: number;
  achievedPerS: number;
  errors: number;
  p99Ms: number;
  /** The first error of the step, if any (what stopped the climb). */
  firstError?: string;
}

/** One open-loop step of the fleet at `rate` commands/s. */
async function fleetStep(urls: string[], rate: number, seed: number): Promise<FleetStep> {
  const next = seededRandom(seed);
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  let inFlight = 0;
  let refused = 0;
  const pending: Promise<void>[] = [];
  const started = performance.now();
  const tickMs = 10;
  let sent = 0;
  while (performance.now() - started < fleetStepMs) {
    const due = Math.floor(((performance.now() - started) / 1000) * rate);
    for (; sent < due; sent++) {
      if (inFlight >= fleetInFlightMax) {
        refused++;
        continue;
      }
      const host = Math.floor(next() * fleetHosts);
      const volume = `h${host}-v${Math.floor(next() * fleetVolumes)}`;
      const region = Math.floor(next() * (fleetVolumeBytes / regionBytes));
      const t = performance.now();
      inFlight++;
      pending.push(
        mark(urls[host % urls.length], volume, `h${host}`, region).then(
          () => void latencies.push(performance.now() - t),
          (err) => {
            errors++;
            firstError ??= String((err as Error).message).slice(0, 200);
          },
        ).finally(() => inFlight--),
      );
    }
    await new Promise((r) => setTimeout(r, tickMs));
  }
  await Promise.all(pending);
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    rate,
    achievedPerS: Math.round(latencies.length / seconds),
    errors: errors + refused,
    p99Ms: Number(quantile(latencies, 0.99).toFixed(1)),
    ...(firstError
      ? { firstError }
      : refused
      ? { firstError: `${refused} not sent (in flight)` }
      : {}),
  };
}

/** The fleet over two trackers on etcd: steps until one is not sustained. */
async function fleet(urls: string[]): Promise<{ steps: FleetStep[]; sustainedPerS: number }> {
  const regs: Promise<void>[] = [];
  for (let h = 0; h < fleetHosts; h++) {
    for (let v = 0; v < fleetVolumes; v++) {
      regs.push(register(urls[h % urls.length], `h${h}-v${v}`, fleetVolumeBytes, `h${h}`));
      if (regs.length >= 32) await Promise.all(regs.splice(0));
    }
  }
  await Promise.all(regs);
  const steps: FleetStep[] = [];
  let sustainedPerS = 0;
  for (let rate = fleetRateStart; rate <= fleetRateMax; rate *= 2) {
    const step = await fleetStep(urls, rate, rate);
    steps.push(step);
    const clean = step.errors === 0 && step.achievedPerS >= 0.95 * rate &&
      step.p99Ms <= fleetLatencyMsMax;
    if (!clean) break;
    sustainedPerS = rate;
  }
  return { steps, sustainedPerS };
}

/** Runs every case; a flat record of numbers plus the fleet's steps. */
export async function benchTrackerEtcd(): Promise<Record<string, unknown>> {
  if (!haveEtcd()) throw new Error("etcd is not installed (apt-get install etcd-server)");
  const dir = await Deno.makeTempDir({ prefix: "tracker_etcd_bench_" });
  const procs: ServiceProcess[] = [];
  const cluster = await startEtcdCluster(dir, 3);
  const out: Record<string, unknown> = {};
  try {
    const start = async (kv: string) => {
      const p = await startService("tracker/main.ts", ["--kv", kv]);
      procs.push(p);
      return p.url;
    };
    const cases: Array<[string, () => Promise<string[]>]> = [
      ["kv", async () => [await start(`${dir}/bench.kv`)]],
      ["etcd1", async () => [await start(cluster.kvUrl("one"))]],
      ["etcd2", async () => [await start(cluster.kvUrl("two")), await start(cluster.kvUrl("two"))]],
    ];
    for (const [name, urls] of cases) {
      const r = await closedLoop(await urls());
      for (const [k, v] of Object.entries(r)) out[`${name}_${k}`] = v;
      await Promise.all(procs.splice(0).map((p) => p.stop()));
    }
    const f = await fleet([
      await start(cluster.kvUrl("fleet")),
      await start(cluster.kvUrl("fleet")),
    ]);
    out.fleet_sustained_cmds_per_s = f.sustainedPerS;
    out.fleet_steps = f.steps;
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
    await cluster.stop();
    await Deno.remove(dir, { recursive: true });
  }
  return out;
}

/** The bench's tables. */
export function formatTrackerEtcd(r: Record<string, unknown>): string {
  const rows = [
    ["kv", "1 tracker, Deno KV file"],
    ["etcd1", "1 tracker, 3-member etcd"],
    ["etcd2", "2 trackers, same etcd, same volume"],
  ].map(([k, what]) => [
    what,
    r[`${k}_cmdsPerS`] as number,
    r[`${k}_p50Ms`] as number,
    r[`${k}_p99Ms`] as number,
    r[`${k}_atomicsPerCmd`] as number,
    r[`${k}_conflictsPerCmd`] as number,
  ]);
  const steps = (r.fleet_steps as FleetStep[]).map((s) => [
    s.rate,
    s.achievedPerS,
    s.errors,
    s.p99Ms,
  ]);
  return [
    `tracker over etcd: ${clientsConcurrent} closed-loop clients, ${caseMs} ms a case, 4 KiB ` +
    "marks spread over 1024 segments of one volume",
    table(["tracker", "commands/s", "p50 ms", "p99 ms", "atomics/cmd", "conflicts/cmd"], rows),
    `fleet: ${fleetHosts} hosts × ${fleetVolumes} volumes on 2 trackers over etcd, open loop, ` +
    `${fleetStepMs} ms a step; sustained (no error, ≥ 95 % of the rate, p99 ≤ ` +
    `${fleetLatencyMsMax} ms): ${r.fleet_sustained_cmds_per_s} commands/s`,
    table(["rate/s", "achieved/s", "errors", "p99 ms"], steps),
    ...(r.fleet_steps as FleetStep[]).filter((s) => s.firstError).map((s) =>
      `at ${s.rate}/s: ${s.firstError}`
    ),
  ].join("\n");
}

if (import.meta.main) {
  console.log(formatTrackerEtcd(await benchTrackerEtcd()));
}
