/**
 * Online verify end to end with real processes. Regions of the secondary are damaged behind the
 * stopped backup's back, so the tracker holds no mark for them: `deno task verify` finds exactly
 * those regions, lists them and exits 1, having marked them at the tracker; a plain
 * `deno task reconstruct` then repairs them, the SHA-256 of the images agree, and verify exits 0.
 * Under a concurrent write workload a verify of equal images reports no difference.
 */
import assert from "node:assert/strict";
import { HostClient } from "../host/client.ts";
import { TrackerClient } from "../tracker/client.ts";
import { overwriteBytes } from "../harness/tools.ts";
import { startSystem, type System } from "../harness/system.ts";
import { randomBytes, seededRandom } from "../src/random.ts";

const region = 64 * 1024;
const MiB = 1024 * 1024;

/** Waits until the host agent no longer reports the backup online. */
async function waitNotMirroring(sys: System, timeoutMs = 20_000): Promise<void> {
  const host = new HostClient(sys.host.url);
  const deadline = Date.now() + timeoutMs;
  while ((await host.status()).mode === "mirroring") {
    if (Date.now() > deadline) throw new Error(`Host still mirroring after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function dumpOutputs(sys: System): void {
  console.error(
    `--- host output ---\n${sys.host.output()}\n--- backup output ---\n${sys.backup.output()}`,
  );
}

Deno.test("verify finds exactly the regions damaged behind the backup, reconstruct repairs them", async () => {
  const sys = await startSystem({ sizeBytes: 16 * MiB });
  try {
    const host = new HostClient(sys.host.url);
    const tracker = new TrackerClient(sys.tracker.url);
    await sys.waitMirroring();
    await host.write(sys.volume, 0, randomBytes(seededRandom(11), 2 * MiB));
    await sys.flushBackup();

    // Outside the bytes written above (those are in the journal's records, which a restart may
    // replay over the damage): regions 128, 133, 192–193 and 243.
    await sys.backup.kill();
    for (const at of [8 * MiB, 8 * MiB + 5 * region, 12 * MiB, 12 * MiB + region]) {
      await overwriteBytes(sys.secondaryPath, at + 17, 100, 0xa5);
    }
    await overwriteBytes(sys.secondaryPath, 15 * MiB + 3 * region + region - 1, 1, 0x01);
    await sys.restartBackup();
    await sys.waitMirroring();
    assert.equal((await tracker.getVolume(sys.volume)).dirtyRegions, 0, "no mark covers it");

    const found = await sys.verify(["--volume", sys.volume, "--poll-ms", "50"]);
    assert.equal(found.code, 1, found.output);
    const listed = [...found.output.matchAll(/^ {2}(\d+)\+(\d+) /gm)].map((m) => [
      Number(m[1]),
      Number(m[2]),
    ]);
    assert.deepEqual(listed, [
      [8 * MiB, region],
      [8 * MiB + 5 * region, region],
      [12 * MiB, 2 * region],
      [15 * MiB + 3 * region, region],
    ], found.output);
    assert.match(
      found.output,
      /1\/1 volume\(s\) verified, 256 regions compared, 5 differing, 4 extent\(s\), 327680 bytes differing/,
    );
    assert.equal((await tracker.getVolume(sys.volume)).dirtyRegions, 5, "marked for reconstruct");
    assert.notEqual(await sys.sha256Secondary(), await sys.sha256Primary(), "verify ships nothing");

    const repaired = await sys.reconstruct();
    assert.equal(repaired.code, 0, repaired.output);
    assert.match(repaired.output, /1\/1 volume\(s\) resynced, 5 regions/);
    await sys.flushBackup();
    assert.equal(await sys.sha256Secondary(), await sys.sha256Primary());

    const again = await sys.verify();
    assert.equal(again.code, 0, again.output);
    assert.match(again.output, /256 regions compared, 0 differing, 0 extent\(s\)/);
  } catch (err) {
    dumpOutputs(sys);
    throw err;
  } finally {
    await sys.stop();
  }
});

Deno.test("verify exits 3 while the backup is offline; lists at most --extents-max extents after", async () => {
  const sys = await startSystem({ sizeBytes: 4 * MiB });
  try {
    await sys.waitMirroring();
    await sys.backup.kill();
    for (let i = 0; i < 10; i++) await overwriteBytes(sys.secondaryPath, i * 2 * region, 1, 0x33);
    await waitNotMirroring(sys);
    const offline = await sys.verify();
    assert.equal(offline.code, 3, offline.output);
    assert.match(
      offline.output,
      /volume "vol0" not verified: backup is still offline for host "host0"/,
    );
    await sys.restartBackup();
    await sys.waitMirroring();
    const { code, output } = await sys.verify(["--extents-max", "3"]);
    assert.equal(code, 1, output);
    assert.equal([...output.matchAll(/^ {2}\d+\+\d+ /gm)].length, 3, output);
    assert.match(output, /^ {2}…and 7 more$/m);
  } catch (err) {
    dumpOutputs(sys);
    throw err;
  } finally {
    await sys.stop();
  }
});

Deno.test("verify under a concurrent write workload reports no difference", async () => {
  // The rate bound stretches the walk over about two seconds of writes.
  const sys = await startSystem({
    sizeBytes: 64 * MiB,
    hostArgs: ["--resync-bytes-per-sec", "32MiB"],
  });
  try {
    const host = new HostClient(sys.host.url);
    const tracker = new TrackerClient(sys.tracker.url);
    await sys.waitMirroring();
    const random = seededRandom(21);
    let writing = true;
    let writes = 0;
    // Three writers of 4–64 KiB at 4 KiB-aligned offsets, often straddling two regions.
    const writer = async () => {
      while (writing) {
        const length = 4096 * (1 + Math.floor(random() * 16));
        const offset = 4096 * Math.floor(random() * ((sys.sizeBytes - length) / 4096));
        await host.write(sys.volume, offset, randomBytes(random, length));
        writes++;
      }
    };
    const workload = Promise.all([writer(), writer(), writer()]);
    let result: { code: number; output: string };
    try {
      result = await sys.verify(["--poll-ms", "100"]);
    } finally {
      writing = false;
      await workload;
    }
    assert.ok(writes > 0, "writes ran during the verify");
    assert.equal(result.code, 0, result.output);
    assert.match(result.output, /1024 regions compared, 0 differing/);
    const progress = await host.verifyProgress(sys.volume);
    console.log(
      `verify under load: ${writes} writes, ${progress.regionsRechecked} region(s) re-checked`,
    );
    assert.equal((await tracker.getVolume(sys.volume)).dirtyRegions, 0, "nothing was marked");
    await sys.flushBackup();
    assert.equal(await sys.sha256Secondary(), await sys.sha256Primary());
  } catch (err) {
    dumpOutputs(sys);
    throw err;
  } finally {
    await sys.stop();
  }
});
