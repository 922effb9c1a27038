/**
 * Cycle mode (issue 10 item 2) with real processes on loopback: the host runs `--mirror cycles`
 * with a short interval while a writer writes over HTTP; the backup's committed points grow, no
 * write goes to the backup one by one, and after a final cycle SHA-256 of primary and secondary
 * are equal. With the backup SIGKILLed between cycles the writes go on, and the first cycles
 * after its restart converge the secondary again; `reconstruct` runs a cycle.
 */
import assert from "node:assert/strict";
import { HostClient } from "../host/client.ts";
import { startSystem, type System } from "../harness/system.ts";
import { randomBytes, seededRandom } from "../src/random.ts";
import { ServiceCallError } from "../src/http_client.ts";
import type { CycleProgress } from "../src/host_schemas.ts";

const seed = Number(Deno.env.get("TRACKMIRROR_SEED") ?? Date.now() % 1_000_000);
const sizeBytes = 8 * 1024 * 1024;
/** Polling step while waiting for the system to reach a state (never asserted on). */
const pollMs = 50;
/** Longest wait for any awaited state, so a broken build fails instead of hanging. */
const waitMsMax = 30_000;

/** Writes random blocks at random offsets until stopped; counts writes and fails loudly. */
function startWriter(sys: System, host: HostClient, rand: () => number) {
  let stopped = false;
  let writes = 0;
  const done = (async () => {
    while (!stopped) {
      const length = 1 + Math.floor(rand() * 100_000);
      const offset = Math.floor(rand() * (sizeBytes - length));
      await host.write(sys.volume, offset, randomBytes(rand, length));
      writes++;
    }
  })();
  return {
    get writes() {
      return writes;
    },
    async stop() {
      stopped = true;
      await done;
    },
  };
}

async function until<T>(
  what: string,
  probe: () => T | undefined | Promise<T | undefined>,
): Promise<T> {
  const deadline = Date.now() + waitMsMax;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, pollMs));
  }
  throw new Error(`Timed out waiting for ${what}`);
}

async function points(sys: System): Promise<number> {
  const res = await fetch(`${sys.backup.url}/v1/volumes/${sys.volume}/points`);
  if (!res.ok) {
    await res.body?.cancel();
    return 0;
  }
  return ((await res.json()) as { points: unknown[] }).points.length;
}

/**
 * Runs one cycle now (waiting out a scheduled one that runs) and returns the final progress of
 * it or of a later one.
 */
async function cycleNow(sys: System, host: HostClient): Promise<CycleProgress> {
  const started = await until("a cycle to start", async () => {
    try {
      return await host.startCycle(sys.volume);
    } catch (err) {
      if (err instanceof ServiceCallError && (err.status === 409 || err.status === 503)) {
        return undefined;
      }
      throw err;
    }
  });
  // The schedule may start the next cycle meanwhile: any cycle from this one on that ended will do
  // (a later one froze later still).
  return await until("the cycle to end", async () => {
    const p = await host.cycleProgress(sys.volume);
    return p.cycleSeq >= started.cycleSeq && p.state !== "running" ? p : undefined;
  });
}

Deno.test("cycle mode: points grow while writing, writes go on with the backup killed, a final cycle makes the images equal", async () => {
  const sys = await startSystem({
    sizeBytes,
    hostArgs: ["--mirror", "cycles", "--cycle-interval", "200ms"],
  });
  try {
    const host = new HostClient(sys.host.url);
    await sys.waitMirroring();
    const rand = seededRandom(seed);
    const writer = startWriter(sys, host, rand);
    await until("three committed points", async () => (await points(sys)) >= 3 || undefined);
    const status = (await host.status()).volumes[0];
    assert.equal(status.mirror, "cycles");
    assert.equal(status.cycle?.intervalMs, 200);
    assert.equal(status.writes?.viaBackup, 0, "no write was sent to the backup one by one");
    assert.ok((status.cycle?.cyclesCommitted ?? 0) >= 3);

    // The backup dies between cycles: writes go on, marked at the tracker.
    await sys.backup.kill();
    const writesBefore = writer.writes;
    await until(
      "writes while the backup is down",
      () => writer.writes >= writesBefore + 20 || undefined,
    );
    const committedBefore = (await host.cycleProgress(sys.volume)).cyclesCommitted;
    await sys.restartBackup();
    await sys.waitMirroring();
    await until(
      "a cycle committed after the restart",
      async () =>
        (await host.cycleProgress(sys.volume)).cyclesCommitted > committedBefore || undefined,
    );

    // reconstruct on a cycle-mode volume runs a cycle whose freeze follows the request.
    await writer.stop();
    const out = await sys.reconstruct();
    assert.equal(out.code, 0, out.output);
    await sys.flushBackup();
    assert.equal(await sys.sha256Secondary(), await sys.sha256Primary());

    // And a cycle asked for over the route after more writes.
    const more = startWriter(sys, host, rand);
    await until("more writes", () => more.writes >= 10 || undefined);
    await more.stop();
    const last = await cycleNow(sys, host);
    assert.equal(last.state, "done", last.error ?? "");
    await sys.flushBackup();
    assert.equal(await sys.sha256Secondary(), await sys.sha256Primary());
    assert.equal((await host.status()).volumes[0].writes?.failed, 0);
  } catch (err) {
    console.error(
      `seed ${seed}\n--- host output ---\n${sys.host.output()}\n--- backup output ---\n${sys.backup.output()}`,
    );
    throw err;
  } finally {
    await sys.stop();
  }
});

Deno.test("cycle mode: the host SIGKILLed mid-cycle leaves the secondary at its last point; after its restart reconstruct converges", async () => {
  const sys = await startSystem({
    sizeBytes,
    // A long interval and a slow walker: the test drives the cycles, and one lasts seconds.
    hostArgs: ["--mirror", "cycles", "--cycle-interval", "1h", "--resync-bytes-per-sec", "2MiB"],
  });
  try {
    let host = new HostClient(sys.host.url);
    await sys.waitMirroring();
    const rand = seededRandom(seed + 1);
    for (let i = 0; i < 20; i++) {
      await host.write(
        sys.volume,
        Math.floor(rand() * (sizeBytes - 65536)),
        randomBytes(rand, 65536),
      );
    }
    assert.equal((await cycleNow(sys, host)).state, "done");
    await sys.flushBackup();
    const point = await sys.sha256Secondary();
    assert.equal(point, await sys.sha256Primary());

    for (let off = 0; off < sizeBytes; off += 1024 * 1024) {
      await host.write(sys.volume, off, randomBytes(rand, 1024 * 1024));
    }
    await host.startCycle(sys.volume);
    await until("the cycle to ship part of its set", async () => {
      const p = await host.cycleProgress(sys.volume);
      return p.cycle === "open" && p.regionsDone > 0 ? p : undefined;
    });
    await sys.host.kill();
    await sys.flushBackup();
    assert.equal(await sys.sha256Secondary(), point, "the secondary is still the last point");

    await sys.restartHost();
    host = new HostClient(sys.host.url);
    await sys.waitMirroring();
    const out = await sys.reconstruct();
    assert.equal(out.code, 0, out.output);
    await sys.flushBackup();
    assert.equal(await sys.sha256Secondary(), await sys.sha256Primary());
  } catch (err) {
    console.error(
      `seed ${seed}\n--- host output ---\n${sys.host.output()}\n--- backup output ---\n${sys.backup.output()}`,
    );
    throw err;
  } finally {
    await sys.stop();
  }
});
