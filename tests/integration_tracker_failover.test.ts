/**
 * Several trackers in the host's list (issue 12 item 2), with real processes on loopback: the
 * host agent started with `--tracker DEAD,LIVE` mirrors and tracks through the live one; and when
 * the tracker in use is SIGKILLed and a second one starts on the same Deno KV file (after the
 * first is dead: two live trackers must never share one file), the host fails over to it. Writes
 * fail only while no tracker of the list answers, and a failed write leaves the primary untouched.
 * SHA-256 of primary and secondary after reconstruct (with the same list) decides the outcome.
 */
import assert from "node:assert/strict";
import { freePort, type ServiceProcess, startService } from "../harness/service_process.ts";
import { runScript, sha256File } from "../harness/tools.ts";
import { HostClient } from "../host/client.ts";
import { TrackerClient } from "../tracker/client.ts";

const volume = "vol0";
const regionBytes = 4096;
const sizeBytes = 16 * 1024 * 1024;
const regions = sizeBytes / regionBytes;
/** Bytes each workload write puts at the start of its own region. */
const writeBytes = 512;

interface Rig {
  dir: string;
  kvPath: string;
  backup: ServiceProcess;
  host: ServiceProcess;
  hostClient: HostClient;
  primaryPath: string;
  secondaryPath: string;
  restartBackup(): Promise<void>;
  waitMode(mode: "mirroring" | "tracking"): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Backup and host agent; `trackers` is the host's `--tracker` list (started by the test).
 * `--predict-regions 0` and one region per write: every write needs its own tracker call.
 */
async function startRig(dir: string, trackers: string): Promise<Rig> {
  const backupDir = `${dir}/backup`;
  const backupPort = freePort();
  const backupArgs = ["--data", backupDir];
  const primaryPath = `${dir}/primary/${volume}.img`;
  const started: ServiceProcess[] = [];
  try {
    const backup = await startService("backup/main.ts", backupArgs, { port: backupPort });
    started.push(backup);
    const host = await startService("host/main.ts", [
      "--nbd-port",
      String(freePort()),
      "--tracker",
      trackers,
      "--backup",
      backup.url,
      "--volume",
      `${volume}=${primaryPath}:${sizeBytes}`,
      "--region-bytes",
      String(regionBytes),
      "--predict-regions",
      "0",
    ]);
    started.push(host);
    const rig: Rig = {
      dir,
      kvPath: `${dir}/tracker.kv`,
      backup,
      host,
      hostClient: new HostClient(host.url),
      primaryPath,
      secondaryPath: `${backupDir}/volumes/${volume}.img`,
      async restartBackup() {
        await rig.backup.kill();
        rig.backup = await startService("backup/main.ts", backupArgs, { port: backupPort });
      },
      async waitMode(mode) {
        const deadline = Date.now() + 20_000;
        while (Date.now() < deadline) {
          if ((await rig.hostClient.status()).mode === mode) return;
          await new Promise((r) => setTimeout(r, 50));
        }
        throw new Error(`Host agent did not reach mode ${mode}:\n${rig.host.output()}`);
      },
      async stop() {
        await Promise.all([rig.host.stop(), rig.backup.stop()]);
      },
    };
    return rig;
  } catch (err) {
    for (const p of started) await p.kill();
    throw err;
  }
}

/** The bytes workload write `i` puts at the start of its region (never all zero). */
function pattern(i: number): Uint8Array {
  return new Uint8Array(writeBytes).fill(1 + (i % 251));
}

/** Region of write `i`: scattered, and distinct for the first `regions` writes. */
function regionOf(i: number): number {
  return (i * 7919) % regions;
}

/**
 * Checks the primary against the writes' outcomes: an acknowledged write's bytes are there, a
 * failed write's region still holds zeros (nothing reached the primary).
 */
async function checkPrimary(path: string, outcomes: Map<number, boolean>): Promise<void> {
  const image = await Deno.readFile(path);
  for (const [i, acked] of outcomes) {
    const offset = regionOf(i) * regionBytes;
    const got = image.subarray(offset, offset + writeBytes);
    const want = acked ? pattern(i) : new Uint8Array(writeBytes);
    assert.deepEqual(got, want, `write ${i} (${acked ? "acknowledged" : "failed"}) at ${offset}`);
  }
}

async function reconstructConverges(rig: Rig, trackers: string): Promise<void> {
  await rig.restartBackup();
  await rig.waitMode("mirroring");
  const out = await runScript("host/resync/reconstruct.ts", ["--tracker", trackers]);
  assert.equal(out.code, 0, out.stdout + out.stderr);
  const flush = await fetch(`${rig.backup.url}/v1/flush`, { method: "POST" });
  await flush.body?.cancel();
  assert.ok(flush.ok, `flush answered ${flush.status}`);
  assert.equal(await sha256File(rig.secondaryPath), await sha256File(rig.primaryPath));
}

Deno.test("a host given --tracker DEAD,LIVE mirrors and tracks through the live one; reconstruct with the same list converges", async () => {
  const dir = await Deno.makeTempDir({ prefix: "trackmirror-failover-" });
  const dead = `http://127.0.0.1:${freePort()}`; // never started
  const tracker = await startService("tracker/main.ts", ["--kv", `${dir}/tracker.kv`]);
  const list = `${dead},${tracker.url}`;
  let rig: Rig | undefined;
  try {
    rig = await startRig(dir, list);
    await rig.waitMode("mirroring");
    const outcomes = new Map<number, boolean>();
    for (let i = 0; i < 10; i++) {
      await rig.hostClient.write(volume, regionOf(i) * regionBytes, pattern(i));
      outcomes.set(i, true);
    }
    await rig.backup.kill();
    for (let i = 10; i < 30; i++) {
      // The first write after the kill may be the one that finds the backup gone; it is then
      // marked at the tracker like the others.
      await rig.hostClient.write(volume, regionOf(i) * regionBytes, pattern(i));
      outcomes.set(i, true);
    }
    await rig.waitMode("tracking");

    // The marks are at the live tracker: every region written during the outage is dirty.
    const live = new TrackerClient(tracker.url);
    const info = await live.getVolume(volume);
    assert.ok(info.dirtyRegions >= 20, `${info.dirtyRegions} dirty regions for 20 tracked writes`);
    const marked = new Set<number>();
    for await (const page of live.log(volume)) {
      for (const e of page.extents) {
        for (let r = e.offset / regionBytes; r < (e.offset + e.length) / regionBytes; r++) {
          marked.add(r);
        }
      }
    }
    for (let i = 10; i < 30; i++) assert.ok(marked.has(regionOf(i)), `region of write ${i}`);

    const status = await rig.hostClient.status();
    const t = status.components.tracker;
    assert.equal(t.current, tracker.url);
    assert.deepEqual(t.urls?.map((u) => [u.url, u.state]), [
      [dead, "offline"],
      [tracker.url, "online"],
    ]);

    await checkPrimary(rig.primaryPath, outcomes);
    await reconstructConverges(rig, list);
    assert.equal((await live.getVolume(volume)).dirtyRegions, 0);

    // `deno task status` with the same list: found through the live tracker, the dead one shown
    // as a standby that does not answer (degraded, exit 1), nothing else wrong.
    const out = await runScript("host/status/status.ts", ["--tracker", list, "--json"]);
    const doc = JSON.parse(out.stdout);
    assert.equal(out.code, 1, out.stdout + out.stderr);
    assert.equal(doc.tracker.url, tracker.url);
    assert.deepEqual(
      doc.tracker.urls.map((u: { url: string; state: string }) => [u.url, u.state]),
      [
        [dead, "offline"],
        [tracker.url, "online"],
      ],
    );
    assert.equal(doc.problems.length, 1, doc.problems.join("\n"));
    assert.match(doc.problems[0], new RegExp(`tracker ${dead} \\(standby\\) does not answer`));
  } catch (err) {
    console.error(`--- host ---\n${rig?.host.output()}\n--- tracker ---\n${tracker.output()}`);
    throw err;
  } finally {
    await rig?.stop();
    await tracker.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the tracker in use is SIGKILLed, a second starts on the same KV file: writes fail only while neither answers, then go on through the second", async () => {
  const dir = await Deno.makeTempDir({ prefix: "trackmirror-failover-" });
  const kv = ["--kv", `${dir}/tracker.kv`];
  const first = await startService("tracker/main.ts", kv);
  const secondPort = freePort();
  const list = `${first.url},http://127.0.0.1:${secondPort}`;
  let second: ServiceProcess | undefined;
  let rig: Rig | undefined;
  let stop = false;
  try {
    rig = await startRig(dir, list);
    await rig.waitMode("mirroring");
    await rig.backup.kill();
    await rig.waitMode("tracking");

    // The marking workload: one write at a time, each to a region of its own.
    const outcomes = new Map<number, boolean>();
    /** Writes issued after the second tracker answered its health check. */
    const afterSecond: number[] = [];
    let phase = "first" as "first" | "gap" | "second";
    const host = rig.hostClient;
    const workload = (async () => {
      for (let i = 0; !stop; i++) {
        assert.ok(i < regions, "the workload ran out of regions");
        const issuedIn = phase;
        if (issuedIn === "second") afterSecond.push(i);
        try {
          await host.write(volume, regionOf(i) * regionBytes, pattern(i));
          outcomes.set(i, true);
        } catch (err) {
          outcomes.set(i, false);
          assert.notEqual(
            issuedIn,
            "second",
            `write ${i} failed with the second tracker up: ${err}`,
          );
          await new Promise((r) => setTimeout(r, 20)); // pace the failures, not a bound
        }
      }
    })();
    let workloadError: unknown;
    workload.catch((err) => workloadError = err);
    const count = (want: boolean) => [...outcomes.values()].filter((v) => v === want).length;
    /** Waits for `what`; a workload failure, or no progress for 60 s, ends the test. */
    const until = async (what: () => boolean) => {
      const deadline = Date.now() + 60_000;
      while (!what()) {
        if (workloadError !== undefined) throw workloadError;
        if (Date.now() > deadline) throw new Error(`Workload stuck: ${[...outcomes]}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    };

    await until(() => count(true) >= 20);
    await first.kill();
    phase = "gap";
    await until(() => count(false) >= 3); // no tracker answers: marks and writes fail
    second = await startService("tracker/main.ts", kv, { port: secondPort });
    phase = "second";
    await until(() => afterSecond.filter((i) => outcomes.get(i) === true).length >= 20);
    stop = true;
    await workload;
    if (workloadError !== undefined) throw workloadError;
    assert.ok(afterSecond.every((i) => outcomes.get(i) === true));

    const status = await host.status();
    const t = status.components.tracker;
    assert.equal(t.current, second.url);
    assert.equal(t.urls?.[0].state, "offline");
    assert.equal(t.urls?.[1].state, "online");
    assert.ok(status.volumes[0].fenced === false && status.volumes[0].registered);
    console.log(
      `failover: ${count(true)} writes acknowledged, ${count(false)} failed while no tracker ` +
        `answered, ${afterSecond.length} issued after the second tracker was up (all acknowledged)`,
    );

    await checkPrimary(rig.primaryPath, outcomes);
    await reconstructConverges(rig, list);
  } catch (err) {
    console.error(
      `--- host ---\n${rig?.host.output()}\n--- second tracker ---\n${second?.output()}`,
    );
    throw err;
  } finally {
    stop = true;
    await rig?.stop();
    await first.kill();
    await second?.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
