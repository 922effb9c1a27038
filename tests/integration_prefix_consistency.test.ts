/**
 * Prefix consistency (issue 10, items 1 to 3): whatever moment of a reconstruct, or of a cycle of
 * a volume mirrored in cycle mode, the host agent, the backup or both are SIGKILLed at, the backup
 * restarted alone recovers to a secondary that equals the primary as of some point in time —
 * never a mix of old and new regions.
 *
 * The workload (tests/support/prefix_workload.ts): writes numbered 1, 2, 3... in one sequence
 * across all rounds; write i fills each 4 KiB block it covers with the u32 i. Several writer loops
 * (each with its own hot area, the areas overlapping) take turns through one mutex held across the
 * HTTP write to the host (`PUT /v1/volumes/vol0/data`): write i is issued only after write i-1 was
 * answered. That makes the host's apply order — the order of the backup's journal and of the
 * primary — exactly the sequence order, so "a point in time" has an exact meaning: the prefix
 * 1..N of the sequence. (Concurrency that matters here is between the application writes and the
 * resync's or the cycle's copies, which run concurrently as in production.)
 *
 * The check, after the backup alone was restarted and flushed: let N be the largest number in any
 * block; every block must hold exactly the number of the last write <= N that covered it (0 for a
 * block no such write covered), i.e. the image is the sequence's prefix 1..N applied to zeros; and
 * N never goes back from one round to the next. No block may hold a mix of two writes.
 *
 * The write in flight when the host dies may have reached the backup and not the primary (the
 * fork writes backup first), the primary and not the backup (cycle mode), or neither. The next
 * round re-issues it (same number, same blocks) first, so the primary's history and the model
 * agree again.
 *
 * Resync rounds: the backup is SIGKILLed (an outage: writes go to the primary and the tracker's
 * marks); it is restarted while the writers go on, and once the host sees it online `deno task
 * reconstruct` starts; once the host reports the resync's cycle open, at a seeded random moment
 * (within 1.5 s, or in two rounds of five within 50 ms) the host, the backup, or both (backup
 * first, host a moment later) are SIGKILLed. The writers
 * keep going through the backup's return: the host opens a cycle for the dirty volume on the new
 * link before it mirrors anything (host/agent/cycle_on_return.ts), so writes mirrored before the
 * resync starts are staged too. The negative control: `TRACKMIRROR_UNSTAGED=1` runs the host with
 * `--unstaged-resync` (copies straight into the secondary, as before issue 10), and the check
 * finds a mix within a few rounds.
 *
 * Cycle rounds: the host mirrors a 16 MiB vol0 with `--mirror cycles --cycle-interval 300ms`
 * (writes are only marked at the tracker; every interval a cycle freezes the volume, ships the
 * marked regions and commits them at the backup); the writers run without pause, and at a seeded
 * random moment within six intervals (or, in two rounds of five, within 50 ms of a cycle's copies
 * being seen under way) the host, the backup or both are SIGKILLed — so kills land before, during
 * and after the freeze, the copies, the commit and the clear of the marks. There is no switch
 * for a broken cycle; by hand (2026-11-24), a host without copy-before-write failed the prefix
 * check in round 1 or 2, one whose cycles send no stage markers (copies straight into the
 * secondary) in round 1.
 *
 * TRACKMIRROR_SEED replays a run; TRACKMIRROR_ROUNDS (default 20) and TRACKMIRROR_CYCLE_ROUNDS
 * (default 20) set the rounds of each test.
 */
import assert from "node:assert/strict";
import { startSystem, type System } from "../harness/system.ts";
import { HostClient } from "../host/client.ts";
import { seededRandom } from "../src/random.ts";
import { checkPrefix, type PrefixLayout, readImage, Workload } from "./support/prefix_workload.ts";

const seed = Number(Deno.env.get("TRACKMIRROR_SEED") ?? Date.now() % 1_000_000);
const rounds = Number(Deno.env.get("TRACKMIRROR_ROUNDS") ?? 20);
const cycleRounds = Number(Deno.env.get("TRACKMIRROR_CYCLE_ROUNDS") ?? 20);
/** Rounds added, at most, while no kill has landed inside a cycle (the meta-checks below). */
const extraRoundsMax = 10;
const unstaged = Deno.env.get("TRACKMIRROR_UNSTAGED") === "1";
const debug = Deno.env.get("TRACKMIRROR_DEBUG") !== undefined;

const layout: PrefixLayout = {
  volume: "vol0",
  volumeBytes: 4 * 1024 * 1024,
  writersCount: 4,
  writeBlocksMax: 4,
};
/** Writes per outage: enough marked regions for a resync of about a second at the rate below. */
const outageWrites = 40;
/** Latest kill, in ms after the cycle opened: the resync takes ~1 s, so some rounds commit. */
const killWithinMs = 1500;
/**
 * Two rounds in five (seeded, resync and cycle rounds alike) aim: they kill within `aimKillMs`
 * of the cycle's copies being seen under way, so every run has kills inside a cycle however fast
 * the machine copies (with random moments alone, a loaded run once had none in 20 rounds).
 */
const aimKillMs = 50;
const aimShare = 0.4;

type KillMode = "host" | "backup" | "both";

/**
 * SIGKILLs the host, the backup, or both; with "backup" the host follows a seeded moment later
 * (up to 200 ms), so the backup restarted alone is the only thing that changes the secondary.
 */
async function kill(sys: System, rand: () => number): Promise<KillMode> {
  const mode = (["host", "backup", "both"] as const)[Math.floor(rand() * 3)];
  if (mode === "host") await sys.host.kill();
  if (mode === "both") await Promise.all([sys.host.kill(), sys.backup.kill()]);
  if (mode === "backup") {
    await sys.backup.kill();
    await new Promise((res) => setTimeout(res, Math.floor(rand() * 200)));
    await sys.host.kill();
  }
  return mode;
}

/**
 * The backup alone recovers (stage commits resume, the journal is replayed and applied); returns
 * the N of its secondary, checked to be a prefix and not behind `floor`.
 */
async function recoverAndCheck(
  sys: System,
  load: Workload,
  floor: number,
  where: string,
  volumeLayout = layout,
): Promise<number> {
  await sys.restartBackup();
  await sys.flushBackup();
  if (debug) console.log(sys.backup.output());
  const image = await readImage(volumeLayout, sys.secondaryPath);
  const n = checkPrefix(volumeLayout, image, load.writes, where);
  assert.ok(n >= floor, `${where}: the secondary went back from write ${floor} to ${n}`);
  return n;
}

async function waitCycleOpen(host: HostClient, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const p = await host.resyncProgress("vol0");
      if (p.state === "running" && (p.cycle === "open" || p.cycle === "unstaged")) return;
      if (p.state === "failed") throw new Error(`The resync failed: ${p.error}`);
    } catch (err) {
      if ((err as Error).message.startsWith("The resync failed")) throw err;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`The resync's cycle did not open within ${timeoutMs} ms`);
}

/** What one round's check found: N, and whether the cycle had committed before the kill. */
interface RoundResult {
  n: number;
  committed: boolean;
}

async function round(
  sys: System,
  load: Workload,
  rand: () => number,
  r: number,
  floor: number,
): Promise<RoundResult> {
  await sys.waitMirroring();
  const host = new HostClient(sys.host.url, { timeoutMs: 5000 });
  const outageFirst = load.writes.length + 1;
  // The outage: the backup dies, the writes go to the primary and the tracker's marks.
  await sys.backup.kill();
  // Re-issued first, while the backup is away: nothing is written before it.
  await load.settle(host);
  await load.run(host, outageWrites).done;
  assert.equal(load.unanswered, undefined, "writes during the outage are answered");
  await sys.restartBackup();
  // The writers go on through the backup's return: until the host sees it online their writes are
  // marked, then mirrored — into a cycle the host opened on the new link before any of them.
  const writers = load.run(host, undefined);
  await sys.waitMirroring();
  const reconstruct = sys.reconstruct(["--poll-ms", "50"]);
  await waitCycleOpen(host);
  const killInMs = rand() < aimShare ? aimKillMs : killWithinMs;
  await new Promise((res) => setTimeout(res, Math.floor(rand() * killInMs)));
  const mode = await kill(sys, rand);
  writers.stop();
  await writers.done;
  const out = await reconstruct;
  if (debug) {
    console.log(`round ${r}: outage from ${outageFirst}, writes to ${load.writes.length}, ${mode}`);
    console.log(out.output.split("\n").filter((l) => !l.includes("running")).join("\n"));
  }
  const n = await recoverAndCheck(sys, load, floor, `round ${r} (kill ${mode}), seed ${seed}`);
  await sys.restartHost();
  // Before the commit the secondary keeps none of the outage's writes (they are only marked).
  return { n, committed: n >= outageFirst };
}

/** Prints what a failing run needs to be replayed and understood. */
function reportFailure(sys: System): void {
  console.error(
    `seed ${seed} (replay with TRACKMIRROR_SEED=${seed})\n--- backup output ---\n` +
      sys.backup.output().slice(-3000) +
      `\n--- host output ---\n${sys.host.output().slice(-3000)}`,
  );
}

Deno.test(`a resync killed at random moments leaves the secondary a prefix of the writes (seed ${seed})`, async () => {
  const rand = seededRandom(seed);
  const sys = await startSystem({
    sizeBytes: layout.volumeBytes,
    hostArgs: [
      // Slow enough that a kill often lands inside the cycle.
      "--resync-bytes-per-sec",
      "1MiB",
      // Only written regions are marked, and a restarted host promotes few activity marks, so
      // the resync copies small chunks that the rate bound spreads over about a second.
      "--predict-regions",
      "0",
      "--activity-unit-bytes",
      "64KiB",
      "--activity-regions-max",
      "16",
      ...(unstaged ? ["--unstaged-resync"] : []),
    ],
  });
  const load = new Workload(layout, rand);
  let floor = 0;
  let midCycle = 0;
  try {
    // Kills land where the machine's timing puts them: on a loaded machine a run can miss the
    // cycle in every round, so it goes on (bounded) until one lands inside.
    for (let r = 1; r <= rounds || (midCycle === 0 && r <= rounds + extraRoundsMax); r++) {
      const result = await round(sys, load, rand, r, floor);
      floor = result.n;
      if (!result.committed) midCycle++;
    }
    console.log(
      `${rounds}+ rounds, ${midCycle} killed before the commit, ${rounds - midCycle} after; ` +
        `${load.writes.length} writes`,
    );
    // Without kills inside the cycle the check above proves nothing about staging.
    if (rounds >= 5) assert.ok(midCycle > 0, `no round was killed inside a cycle (seed ${seed})`);
  } catch (err) {
    reportFailure(sys);
    throw err;
  } finally {
    await sys.stop();
  }
});

/** The cycle interval of the cycle rounds; kills land within `cycleKillIntervals` of them. */
const cycleIntervalMs = 300;
const cycleKillIntervals = 6;
/** How long an aiming cycle round waits to see a cycle's copies under way. */
const aimWaitMs = 5000;
/**
 * The cycle rounds' volume: 16 chunks of the walker (1 MiB, 4 at once), so with the rate bound
 * below a cycle's copies take a good part of the interval — writes land on frozen regions not yet
 * shipped (copy-before-write), kills land inside cycles.
 */
const cycleLayout: PrefixLayout = { ...layout, volumeBytes: 16 * 1024 * 1024 };

/**
 * Polls the host's `GET /v1/volumes/vol0/cycle` until stopped and keeps the last answer, so a
 * round can say what the cycle was doing when the kill came (only for the count printed at the
 * end and the check that some kills landed inside a cycle; the prefix check does not depend on it).
 */
function watchCycle(hostUrl: string): { last(): Record<string, unknown>; stop(): Promise<void> } {
  let last: Record<string, unknown> = {};
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      try {
        const res = await fetch(`${hostUrl}/v1/volumes/${layout.volume}/cycle`);
        if (res.ok) last = await res.json();
        else await res.body?.cancel();
      } catch {
        return; // the host is gone
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  return {
    last: () => last,
    stop: async () => {
      stopped = true;
      await loop;
    },
  };
}

/** Whether a cycle progress answer says a cycle was between its freeze and its commit's end. */
function inCycle(p: Record<string, unknown>): boolean {
  return p.state === "running";
}

/** Waits until `watch` saw a cycle's stage open at the backup (copies under way), or times out. */
async function waitShipping(watch: ReturnType<typeof watchCycle>): Promise<void> {
  const deadline = Date.now() + aimWaitMs;
  while (Date.now() < deadline) {
    const p = watch.last();
    if (inCycle(p) && p.cycle === "open") return;
    await new Promise((r) => setTimeout(r, 2));
  }
}

async function cycleRound(
  sys: System,
  load: Workload,
  rand: () => number,
  r: number,
  floor: number,
): Promise<{ n: number; inCycle: boolean }> {
  await sys.waitMirroring();
  const host = new HostClient(sys.host.url, { timeoutMs: 5000 });
  const watch = watchCycle(sys.host.url);
  const writers = load.run(host, undefined);
  const aim = rand() < aimShare;
  if (aim) await waitShipping(watch);
  const killInMs = aim ? aimKillMs : cycleKillIntervals * cycleIntervalMs;
  await new Promise((res) => setTimeout(res, Math.floor(rand() * killInMs)));
  const during = inCycle(watch.last());
  const mode = await kill(sys, rand);
  writers.stop();
  await writers.done;
  await watch.stop();
  if (debug) {
    console.log(`cycle round ${r}: writes to ${load.writes.length}, ${mode}, ${during}`);
    console.log(sys.host.output().slice(-2000));
  }
  const where = `cycle round ${r} (kill ${mode}), seed ${seed}`;
  const n = await recoverAndCheck(sys, load, floor, where, cycleLayout);
  await sys.restartHost();
  // Re-issued at once: the first cycle of the new agent is an interval away, so it cannot
  // freeze the primary with the dead agent's last write in some of its blocks only.
  await load.settle(new HostClient(sys.host.url, { timeoutMs: 5000 }));
  return { n, inCycle: during };
}

Deno.test(`cycle mode killed at random moments leaves the secondary a prefix of the writes (seed ${seed})`, async () => {
  const rand = seededRandom(seed + 1);
  const sys = await startSystem({
    sizeBytes: cycleLayout.volumeBytes,
    hostArgs: [
      "--mirror",
      "cycles",
      "--cycle-interval",
      `${cycleIntervalMs}ms`,
      "--resync-bytes-per-sec",
      "64MiB",
    ],
  });
  const load = new Workload(cycleLayout, rand);
  let floor = 0;
  let inside = 0;
  let advanced = 0;
  try {
    const short = () => inside === 0 || advanced < cycleRounds / 10;
    for (let r = 1; r <= cycleRounds || (short() && r <= cycleRounds + extraRoundsMax); r++) {
      const result = await cycleRound(sys, load, rand, r, floor);
      if (result.n > floor) advanced++;
      floor = result.n;
      if (result.inCycle) inside++;
    }
    console.log(
      `${cycleRounds} cycle rounds, ${inside} killed inside a cycle, ${advanced} with the ` +
        `secondary further than the round before; ${load.writes.length} writes, N = ${floor}`,
    );
    // A secondary that never moves is a prefix (of nothing): the cycles must ship. Rounds that
    // aim at a cycle's copies often end before any commit, and under a loaded full suite about a
    // third of the others do too (6 of 20 advanced there, 7 to 14 alone): two is the floor.
    if (cycleRounds >= 5) {
      assert.ok(advanced >= cycleRounds / 10, `the secondary advanced in ${advanced} rounds only`);
      assert.ok(inside > 0, `no round was killed inside a cycle (seed ${seed})`);
    }
    // Each commit is a point in time the backup lists.
    const res = await fetch(`${sys.backup.url}/v1/volumes/${layout.volume}/points`);
    const { points } = await res.json() as { points: unknown[] };
    assert.ok(points.length > 0, "the backup lists no committed point of vol0");
  } catch (err) {
    reportFailure(sys);
    throw err;
  } finally {
    await sys.stop();
  }
});
