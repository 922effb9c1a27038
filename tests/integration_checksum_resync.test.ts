/**
 * Checksum resync end to end with real processes: regions of the secondary are damaged behind the
 * backup's back (it is stopped) and regions of the primary behind the host's (it is stopped), so
 * the tracker holds no mark for any of them. A plain reconstruct leaves the images different;
 * `reconstruct --checksum` ships exactly the damaged regions and the SHA-256 of the images agree.
 * And a difference only the backup's open cycle holds: a staged write the primary refused.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { HostClient } from "../host/client.ts";
import { TrackerClient } from "../tracker/client.ts";
import { overwriteBytes } from "../harness/tools.ts";
import { startSystem } from "../harness/system.ts";
import { faultFileEnv, faultRecheckMs } from "../src/fault_file.ts";
import { randomBytes, seededRandom } from "../src/random.ts";

const region = 64 * 1024;
const MiB = 1024 * 1024;

Deno.test("reconstruct --checksum ships exactly the regions damaged without a mark; images equal", async () => {
  const sys = await startSystem({ sizeBytes: 16 * MiB });
  try {
    const host = new HostClient(sys.host.url);
    const tracker = new TrackerClient(sys.tracker.url);
    await sys.waitMirroring();
    await host.write(sys.volume, 0, randomBytes(seededRandom(5), 2 * MiB));
    await sys.flushBackup();

    // The secondary, behind the stopped backup's back: 3 regions (none in the journal's records,
    // which a restart replays).
    await sys.backup.kill();
    const secondaryDamage = [8 * MiB, 8 * MiB + 5 * region, 15 * MiB + 3 * region];
    for (const at of secondaryDamage) await overwriteBytes(sys.secondaryPath, at + 17, 100, 0xa5);
    await sys.restartBackup();
    await sys.waitMirroring();

    // The primary, behind the stopped host's back: 2 regions outside the units the host wrote
    // (those hold activity marks, which its restart turns into dirty marks).
    await sys.host.kill();
    const primaryDamage = [9 * MiB + region, 12 * MiB];
    for (const at of primaryDamage) await overwriteBytes(sys.primaryPath, at + 1000, 10, 0x5a);
    await sys.restartHost();
    await sys.waitMirroring();

    const plain = await sys.reconstruct();
    assert.equal(plain.code, 0, plain.output);
    await sys.flushBackup();
    assert.notEqual(
      await sys.sha256Secondary(),
      await sys.sha256Primary(),
      "the tracker's marks do not cover the damage: a plain reconstruct cannot repair it",
    );

    const { code, output } = await sys.reconstruct(["--checksum"]);
    assert.equal(code, 0, output);
    const summary = /(\d+) regions compared, (\d+) shipped, (\d+) skipped, (\d+) bytes shipped/
      .exec(output);
    assert.ok(summary, output);
    const [compared, shipped, skipped, bytesShipped] = summary.slice(1).map(Number);
    const damaged = secondaryDamage.length + primaryDamage.length;
    assert.equal(compared, sys.sizeBytes / region);
    assert.equal(shipped, damaged, output);
    assert.equal(skipped, compared - damaged);
    assert.equal(bytesShipped, damaged * region);
    assert.equal((await tracker.getVolume(sys.volume)).dirtyRegions, 0, "marks cleared");

    await sys.flushBackup();
    assert.equal(await sys.sha256Secondary(), await sys.sha256Primary());
  } catch (err) {
    console.error(
      `--- host output ---\n${sys.host.output()}\n--- backup output ---\n${sys.backup.output()}`,
    );
    throw err;
  } finally {
    await sys.stop();
  }
});

Deno.test("reconstruct --checksum --host repairs a dead host's volume from its primary image", async () => {
  const sys = await startSystem({ sizeBytes: 16 * MiB });
  try {
    const host = new HostClient(sys.host.url);
    await sys.waitMirroring();
    await host.write(sys.volume, 3 * MiB, randomBytes(seededRandom(6), MiB));
    await sys.flushBackup();
    await sys.host.kill();
    await overwriteBytes(sys.primaryPath, 14 * MiB + 7 * region, 64, 0x77);
    const { code, output } = await sys.reconstruct([
      "--host",
      "host0",
      "--backup",
      sys.backup.url,
      "--volume-path",
      `${sys.volume}=${sys.primaryPath}`,
      "--force",
      "--checksum",
    ]);
    assert.equal(code, 0, output);
    assert.match(output, / 256 regions compared, 1 shipped, 255 skipped, 65536 bytes shipped/);
    await sys.flushBackup();
    assert.equal(await sys.sha256Secondary(), await sys.sha256Primary());
  } finally {
    await sys.stop();
  }
});

/**
 * The backup holds a write in its open cycle's stage that the primary refused (ENOSPC after the
 * backup took it). The secondary's file and the primary agree on that region until the commit
 * applies the stage, so a digest of the file would call it equal and the checksum resync would
 * leave it unshipped: the commit then puts on the secondary bytes the primary never held (fault
 * sim, `--ack received`, seed 4247, where the tracker had also lost the refused write's mark).
 * The backup answers such a region with a digest that matches nothing, so it is shipped.
 */
Deno.test("reconstruct --checksum ships a region whose staged record the primary refused; images equal", async () => {
  const faultDir = await Deno.makeTempDir({ prefix: "trackmirror-faults-" });
  const faultPath = join(faultDir, "faults");
  const setFaults = async (lines: string[]) => {
    await Deno.writeTextFile(faultPath, lines.join("\n") + "\n");
    await new Promise((r) => setTimeout(r, faultRecheckMs * 2)); // seen by both processes
  };
  const sys = await startSystem({
    sizeBytes: 8 * MiB,
    linkProxy: true,
    env: { [faultFileEnv]: faultPath },
  });
  const host = new HostClient(sys.host.url);
  const stageOpen = async () => (await host.status()).volumes[0].stageOpen === true;
  try {
    await sys.waitMirroring();
    await host.write(sys.volume, 0, randomBytes(seededRandom(7), 4096));
    // A cycle opens at the backup: its link returns while the tracker cannot say whether the
    // volume is dirty (integration_stage_on_return.test.ts). Bounded wait for the return.
    await sys.tracker.kill();
    sys.linkProxy!.cut();
    const deadline = Date.now() + 15_000;
    while (!(await stageOpen()) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(await stageOpen(), "a cycle is open at the backup");
    await sys.waitMirroring();
    await sys.restartTracker();

    await setFaults(["primary=enospc"]);
    const res = await fetch(`${sys.host.url}/v1/volumes/${sys.volume}/data?offset=${3 * MiB}`, {
      method: "PUT",
      body: randomBytes(seededRandom(8), 8192) as Uint8Array<ArrayBuffer>,
    });
    assert.equal(res.status, 507, await res.text());
    await setFaults([]);

    const { code, output } = await sys.reconstruct(["--checksum"]);
    assert.equal(code, 0, output);
    assert.equal(await stageOpen(), false, "the checksum resync committed the cycle");
    await sys.flushBackup();
    assert.equal(await sys.sha256Secondary(), await sys.sha256Primary());
  } catch (err) {
    console.error(
      `--- host output ---\n${sys.host.output()}\n--- backup output ---\n${sys.backup.output()}`,
    );
    throw err;
  } finally {
    await sys.stop();
    await Deno.remove(faultDir, { recursive: true });
  }
});
