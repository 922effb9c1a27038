/**
 * Checksum resync end to end with real processes: regions of the secondary are damaged behind the
 * backup's back (it is stopped) and regions of the primary behind the host's (it is stopped), so
 * the tracker holds no mark for any of them. A plain reconstruct leaves the images different;
 * `reconstruct --checksum` ships exactly the damaged regions and the SHA-256 of the images agree.
 */
import assert from "node:assert/strict";
import { HostClient } from "../host/client.ts";
import { TrackerClient } from "../tracker/client.ts";
import { overwriteBytes } from "../harness/tools.ts";
import { startSystem } from "../harness/system.ts";
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
