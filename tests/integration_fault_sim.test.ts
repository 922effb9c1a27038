/**
 * The seeded fault simulation (issue 9 item 6; TigerBeetle's VOPR and FoundationDB's simulator
 * are the models, as far as real processes allow): tracker, backup and host agent run as real
 * processes with TcpProxies between host and backup link, host and tracker, and host and the
 * backup's HTTP API. Each round draws a fault schedule from its seed, runs a workload of HTTP
 * writes against it while the faults come and go, then heals everything, reconstructs (with
 * `--checksum` when the host says its record is not trusted) and checks from outside: every
 * acknowledged write is on the primary (a write that failed may have landed or not: either value
 * is accepted there), and SHA-256(primary) == SHA-256(secondary).
 *
 * TRACKMIRROR_SEED (default: from the clock) picks the first round's seed; round r uses seed + r
 * - 1, so `TRACKMIRROR_SEED=<round seed> TRACKMIRROR_ROUNDS=1` replays one round's schedule and
 * bytes (on a fresh volume). TRACKMIRROR_ROUNDS (default 30) extends the run; TRACKMIRROR_FAULTS
 * (a comma list of kinds, or "all") overrides the enabled kinds below. Without TRACKMIRROR_ACK it
 * runs twice: `durable` (TRACKMIRROR_ROUNDS rounds), then `received` (TRACKMIRROR_RECEIVED_ROUNDS,
 * default 10, from seed + 500000); TRACKMIRROR_ACK=durable|received runs that mode only.
 */
import assert from "node:assert/strict";
import { HostClient } from "../host/client.ts";
import { FaultInjector } from "../harness/fault_sim.ts";
import {
  describeSchedule,
  type FaultKind,
  faultKinds,
  parseFaultKinds,
  planRound,
} from "../harness/fault_plan.ts";
import { startSystem, type System } from "../harness/system.ts";
import { sha256 } from "../harness/tools.ts";
import { WriteModel } from "../harness/write_model.ts";
import { randomBytes, seededRandom } from "../src/random.ts";
import { writeSliceNbd } from "./support/nbd_slice_writer.ts";
import { type RangeArea, type RangeLayout, rangePicker } from "./support/sim_ranges.ts";
import {
  flushSettled,
  outputs,
  settledTrust,
  volumeTrust,
  waitRegistered,
} from "./support/sim_settle.ts";

/**
 * The one list of fault kinds: each is drawn in CI unless `enabled: false` says why not (with
 * `waitsFor`); TRACKMIRROR_FAULTS overrides it.
 */
const faultList: { kind: FaultKind; enabled: boolean; waitsFor?: string }[] = [
  { kind: "kill-tracker", enabled: true },
  { kind: "kill-backup", enabled: true },
  { kind: "kill-host", enabled: true },
  { kind: "stop-tracker", enabled: true },
  { kind: "stop-backup", enabled: true },
  { kind: "link-delay", enabled: true },
  { kind: "link-hold", enabled: true },
  { kind: "link-cut", enabled: true },
  { kind: "link-refuse", enabled: true },
  { kind: "tracker-net-delay", enabled: true },
  { kind: "tracker-net-hold", enabled: true },
  { kind: "tracker-net-cut", enabled: true },
  { kind: "tracker-net-refuse", enabled: true },
  { kind: "backup-http-hold", enabled: true },
  { kind: "backup-http-refuse", enabled: true },
  { kind: "second-agent-other-id", enabled: true },
  { kind: "resync-during", enabled: true },
  { kind: "journal-enospc", enabled: true },
  { kind: "journal-eio", enabled: true },
  { kind: "primary-enospc", enabled: true },
  { kind: "primary-eio", enabled: true },
  { kind: "secondary-enospc", enabled: true },
  { kind: "secondary-eio", enabled: true },
  { kind: "kv-empty", enabled: true },
  { kind: "kv-older", enabled: true },
  { kind: "second-agent-same-id", enabled: true },
];
assert.deepEqual(faultList.map((f) => f.kind).sort(), [...faultKinds].sort());

const seed = envCount("TRACKMIRROR_SEED", Date.now() % 1_000_000);
const rounds = envCount("TRACKMIRROR_ROUNDS", 30);
const faultsEnv = Deno.env.get("TRACKMIRROR_FAULTS");
/** The host's `--ack` mode when `TRACKMIRROR_ACK` picks one (then only that mode runs). */
const ackEnv = Deno.env.get("TRACKMIRROR_ACK");
if (ackEnv !== undefined && ackEnv !== "durable" && ackEnv !== "received") {
  throw new RangeError(`TRACKMIRROR_ACK "${ackEnv}" must be durable or received`);
}
/**
 * Rounds in `received` mode when `TRACKMIRROR_ACK` is not set (`TRACKMIRROR_RECEIVED_ROUNDS`): a
 * shorter second run, so every suite run also draws fresh received-mode schedules (seed 4247 of
 * that mode found a real divergence that durable rounds never hit).
 */
const receivedRounds = envCount("TRACKMIRROR_RECEIVED_ROUNDS", 10);
/** The received-mode run's first seed, apart from the durable run's so schedules differ. */
const receivedSeedOffset = 500_000;
const enabled = faultsEnv !== undefined
  ? parseFaultKinds(faultsEnv)
  : faultList.filter((f) => f.enabled).map((f) => f.kind);

const MiB = 1024 * 1024;
/** Small, so a round's reconstruct, flush and hashes take milliseconds. */
const sizeBytes = 8 * MiB;
/**
 * Concurrent writers; each owns part of the volume in a round (`sim_ranges.ts`: slices or
 * stripes), the last slice is the faults'. The last writer speaks NBD (WRITE, TRIM,
 * WRITE_ZEROES), the others HTTP.
 */
const writers = 3;
const sliceBytes = sizeBytes / (writers + 1);
const writeBytesMax = 64 * 1024;
/** What the writers share (all but the faults' slice), and how they split it per round. */
const area: RangeArea = {
  areaBytes: writers * sliceBytes,
  writers,
  writeBytesMax,
  stripeBytes: 16 * 1024,
};
const writesPerWriterMax = 40;
/** Writes go on this long after the last fault healed, before the round is checked. */
const tailMs = 200;
/** Bound on every wait for the system to settle (mirroring again, trust noticed). */
const settleMs = 30_000;
/** A write not answered within this fails in the model ("old or new"). */
const writeTimeoutMs = 4000;
/** Short, so the host re-registers (and notices a replaced tracker record) within a second. */
const leaseMs = 3000;
const hostArgs = (ack: "durable" | "received") => [
  "--ack",
  ack,
  "--lease-ms",
  String(leaseMs),
  "--probe-interval-ms-max",
  "500",
  "--link-ack-timeout-ms",
  "1000",
  "--activity-regions-max",
  "64",
  "--activity-unit-bytes",
  "256KiB",
  "--predict-regions",
  "4",
];

const runs: { ack: "durable" | "received"; seed: number; rounds: number }[] = ackEnv !== undefined
  ? [{ ack: ackEnv, seed, rounds }]
  : [
    { ack: "durable", seed, rounds },
    { ack: "received", seed: seed + receivedSeedOffset, rounds: receivedRounds },
  ];
for (const { ack, seed, rounds } of runs) {
  if (rounds < 1) continue;
  Deno.test(
    `seeded faults against real processes: every acknowledged write survives and the images converge (seed ${seed}, ${rounds} rounds, --ack ${ack})`,
    () => simulate(ack, seed, rounds),
  );
}

async function simulate(ack: "durable" | "received", seed: number, rounds: number): Promise<void> {
  const disabled = faultList.filter((f) => !enabled.includes(f.kind));
  for (const f of disabled) console.log(`fault sim: ${f.kind} disabled: waits for ${f.waitsFor}`);
  const faultDir = await Deno.makeTempDir({ prefix: "trackmirror-faults-" });
  const faultFile = `${faultDir}/faults`;
  const sys = await startSystem({
    sizeBytes,
    hostArgs: hostArgs(ack),
    linkProxy: true,
    trackerProxy: true,
    backupProxy: true,
    env: { TRACKMIRROR_FAULT_FILE: faultFile },
  });
  const model = new WriteModel(sizeBytes);
  const host = new HostClient(sys.host.url, { timeoutMs: writeTimeoutMs });
  let roundSeed = seed;
  const injector = new FaultInjector(sys, faultFile, {
    leaseRenewMs: leaseMs / 3,
    trackedWrite: () => trackedWrite(host, sys, model, seededRandom(roundSeed ^ 0x5eed)),
  });
  const started = Date.now();
  let checksumResyncs = 0;
  try {
    for (let round = 1; round <= rounds; round++) {
      roundSeed = seed + round - 1;
      const rand = seededRandom(roundSeed);
      const schedule = planRound(rand, enabled);
      const layout: RangeLayout = rand() < 0.5 ? "slices" : "stripes";
      try {
        const trust = await runRound(sys, model, host, injector, schedule, layout, roundSeed);
        if (trust === "checksum-resync-needed") checksumResyncs++;
      } catch (err) {
        throw new Error(
          `Fault simulation failed in round ${round} of ${rounds} (seed ${seed}; replay the ` +
            `round: TRACKMIRROR_ACK=${ack} TRACKMIRROR_SEED=${roundSeed} TRACKMIRROR_ROUNDS=1)\n` +
            `writers' layout: ` +
            `${layout}; schedule:\n` +
            `${describeSchedule(schedule)}\n${(err as Error).message}\n${await outputs(sys)}`,
          { cause: err },
        );
      }
    }
    const byKind = [...injector.counts].sort().map(([k, n]) => `${k}=${n}`).join(" ");
    const skipped = [...injector.skipped].map(([k, n]) => `${k}=${n}`).join(" ");
    console.log(
      `fault sim: ${rounds} rounds (seed ${seed}, --ack ${ack}) in ${
        ((Date.now() - started) / 1000).toFixed(1)
      } s; ` +
        `faults ${byKind}${skipped ? ` (not contended: ${skipped})` : ""}; writes checked ` +
        `${model.writesChecked} (failed, old or new: ${model.writesFailed}); checksum resyncs ` +
        `${checksumResyncs}`,
    );
    assert.ok(model.writesChecked > 0, "No write was acknowledged in any round");
  } finally {
    await injector.healAll().catch(() => {});
    await sys.stop();
    await Deno.remove(faultDir, { recursive: true });
  }
}

/** One round: workload under the schedule, heal, reconstruct, check. Returns the host's trust. */
async function runRound(
  sys: System,
  model: WriteModel,
  host: HostClient,
  injector: FaultInjector,
  schedule: Parameters<FaultInjector["run"]>[0],
  layout: RangeLayout,
  roundSeed: number,
): Promise<string | undefined> {
  injector.startRound();
  await sys.waitMirroring(settleMs);
  const workload = { stop: false };
  const writing = Promise.all(
    Array.from({ length: writers }, (_, w) => {
      const rand = seededRandom(roundSeed * 8 + w + 1);
      const pick = rangePicker(layout, w, area);
      if (w < writers - 1) return writeSlice(host, sys, model, pick, rand, workload);
      return writeSliceNbd({
        port: Number(new URL(sys.nbdUri).port),
        volume: sys.volume,
        model,
        pick,
        requestsMax: writesPerWriterMax,
        replyMsMax: writeTimeoutMs,
        rand,
        stopped: () => workload.stop,
      });
    }),
  );
  try {
    await injector.run(schedule);
    await sleep(tailMs);
  } finally {
    workload.stop = true;
    await writing;
    await injector.healAll();
  }
  assert.deepEqual(injector.violations, [], injector.violations.join("\n"));
  await sys.waitMirroring(settleMs);
  await waitRegistered(sys, settleMs);
  // Liveness: a system that failed every write would pass every other check.
  const healed = await faultSliceWrite(host, sys, model, seededRandom(roundSeed ^ 0xbeef));
  assert.ok(healed, "A write after healing was not acknowledged");
  const trust = await settledTrust(sys, injector.recordLost, settleMs);
  const { code, output } = await sys.reconstruct(
    trust === "checksum-resync-needed" ? ["--checksum"] : [],
  );
  assert.equal(code, 0, `reconstruct (trust ${trust}) exited ${code}:\n${output}`);
  const info = await (await fetch(`${sys.tracker.url}/v1/volumes/${sys.volume}`)).json();
  assert.equal(info.dirtyRegions, 0, `Dirty regions left after reconstruct:\n${output}`);
  await flushSettled(sys, settleMs);
  const primary = await Deno.readFile(sys.primaryPath);
  const mismatch = model.check(primary);
  assert.equal(
    mismatch,
    null,
    `The primary lost an acknowledged write: ${JSON.stringify(mismatch)}`,
  );
  const secondary = await Deno.readFile(sys.secondaryPath);
  assert.equal(
    await sha256(secondary),
    await sha256(primary),
    `Primary and secondary differ after reconstruct (first differing byte ` +
      `${primary.findIndex((b, i) => secondary[i] !== b)})`,
  );
  if (trust !== undefined) {
    assert.equal(await volumeTrust(sys), "trusted", "Trust after reconstruct");
  }
  return trust;
}

/** Writes ranges `pick` draws until told to stop, recording each outcome in the model. */
async function writeSlice(
  host: HostClient,
  sys: System,
  model: WriteModel,
  pick: (rand: () => number) => { offset: number; length: number },
  rand: () => number,
  workload: { stop: boolean },
): Promise<void> {
  for (let n = 0; n < writesPerWriterMax && !workload.stop; n++) {
    const { offset, length } = pick(rand);
    const data = randomBytes(rand, length);
    if (!(await modelledWrite(host, sys, model, offset, data))) await sleep(50);
    await sleep(Math.floor(rand() * 20));
  }
}

/** One write through the host's HTTP API; its outcome goes into the model. */
async function modelledWrite(
  host: HostClient,
  sys: System,
  model: WriteModel,
  offset: number,
  data: Uint8Array,
): Promise<boolean> {
  const index = model.issue();
  try {
    await host.write(sys.volume, offset, data);
    model.acknowledged(index, offset, data);
    return true;
  } catch {
    model.failed(index, offset, data);
    return false;
  }
}

/** A write in the faults' slice that must be acknowledged (kv-older's lost mark). */
async function trackedWrite(
  host: HostClient,
  sys: System,
  model: WriteModel,
  rand: () => number,
): Promise<void> {
  for (let attempt = 0; attempt < 5; attempt++) {
    if (await faultSliceWrite(host, sys, model, rand)) return;
    await sleep(200);
  }
  throw new Error(`A write meant to be marked at the tracker was never acknowledged`);
}

/** One modelled write in the faults' slice (no writer of the round touches it). */
function faultSliceWrite(
  host: HostClient,
  sys: System,
  model: WriteModel,
  rand: () => number,
): Promise<boolean> {
  const length = 4096 * (1 + Math.floor(rand() * 16));
  const offset = writers * sliceBytes + Math.floor(rand() * (sliceBytes - length));
  return modelledWrite(host, sys, model, offset, randomBytes(rand, length));
}

/** A whole-number environment variable, or `fallback`. */
function envCount(name: string, fallback: number): number {
  const text = Deno.env.get(name);
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n)) {
    throw new RangeError(`${name} "${text}" must be a whole number`);
  }
  return n;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
