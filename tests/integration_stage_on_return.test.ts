/**
 * Issue 10: the backup's link comes back while the tracker is away, so the host cannot tell
 * whether a volume is dirty and opens a cycle for it on the new link; the backup stages every
 * mirrored write of it from then on. The volume turns out clean at the tracker — and still its
 * secondary lacks those writes until a resync commits the stage. reconstruct must see that (the
 * host status says `stageOpen`) and resync it: SHA-256 of primary and secondary equal afterwards.
 * Found by the fault simulation (seed 588355: kill-tracker, then link-cut).
 */
import assert from "node:assert/strict";
import { HostClient } from "../host/client.ts";
import { startSystem } from "../harness/system.ts";

const mib = 1024 * 1024;

async function volumeStatus(url: string) {
  return (await new HostClient(url).status()).volumes[0];
}

Deno.test("a cycle opened at the backup's return while the tracker was away is committed by reconstruct, though the volume is clean", async () => {
  const sys = await startSystem({ sizeBytes: 8 * mib, linkProxy: true });
  const host = new HostClient(sys.host.url);
  try {
    await sys.waitMirroring();
    await host.write(sys.volume, 0, new Uint8Array(4096).fill(1));
    await sys.tracker.kill();
    sys.linkProxy!.cut(); // the link drops; the host finds the backup again with no tracker
    // Bounded wait for the return (the host notices the cut, probes, opens the new link).
    const deadline = Date.now() + 15_000;
    while (!(await volumeStatus(sys.host.url)).stageOpen && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal((await volumeStatus(sys.host.url)).stageOpen, true, sys.host.output());
    await sys.waitMirroring();
    await sys.restartTracker();
    await host.write(sys.volume, 2 * mib, new Uint8Array(4096).fill(2)); // mirrored: staged
    const info = await (await fetch(`${sys.tracker.url}/v1/volumes/${sys.volume}`)).json();
    assert.equal(info.dirtyRegions, 0, "the volume is clean at the tracker");

    const { code, output } = await sys.reconstruct();
    assert.equal(code, 0, output);
    assert.match(output, /cycle open at the backup/);
    assert.equal((await volumeStatus(sys.host.url)).stageOpen, false);
    await sys.flushBackup();
    assert.equal(await sys.sha256Secondary(), await sys.sha256Primary());
  } finally {
    await sys.stop();
  }
});
