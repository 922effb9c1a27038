/**
 * Generations against real processes (issue 9): the tracker's KV deleted, or replaced by an older
 * copy, while regions are marked with the backup offline. The host must notice (status
 * `checksum-resync-needed`), mark every later write (its cache of marks is dropped: the tracker's
 * dirty count rises for a region it had cached), and a plain reconstruct must refuse, naming
 * `--checksum`. And a second agent serving the same volume from another primary: split brain.
 * Checked from outside: the tracker's own counts, the host's status, the exit code.
 */
import assert from "node:assert/strict";
import { HostClient } from "../host/client.ts";
import { startSystem, type System } from "../harness/system.ts";
import { type ServiceProcess, startService } from "../harness/service_process.ts";
import type { HostStatus } from "../src/host_schemas.ts";
import type { VolumeInfo } from "../src/schemas.ts";

const mib = 1024 * 1024;
const kvSuffixes = ["", "-wal", "-shm"];

async function hostVolume(sys: Pick<System, "host">): Promise<HostStatus["volumes"][number]> {
  const status = await new HostClient(sys.host.url).status();
  return status.volumes[0];
}

async function trackerVolume(sys: System): Promise<VolumeInfo> {
  const res = await fetch(`${sys.tracker.url}/v1/volumes/${sys.volume}`);
  assert.equal(res.status, 200, await res.clone().text());
  return await res.json();
}

/** Polls the host's status until the volume's trust is `trust` (bounded: a lease renewal). */
async function waitTrust(sys: Pick<System, "host">, trust: string, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  let v = await hostVolume(sys);
  while (v.trust !== trust && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    v = await hostVolume(sys);
  }
  assert.equal(v.trust, trust, `status: ${JSON.stringify(v)}\n${sys.host.output()}`);
  return v;
}

/** Waits (bounded) until the process has logged `pattern`: its output is read asynchronously. */
async function waitLogged(proc: ServiceProcess, pattern: RegExp, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (!pattern.test(proc.output()) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.match(proc.output(), pattern);
}

async function removeKv(kv: string): Promise<void> {
  for (const s of kvSuffixes) await Deno.remove(kv + s).catch(() => {});
}

async function copyKv(from: string, to: string): Promise<void> {
  await removeKv(to);
  for (const s of kvSuffixes) await Deno.copyFile(from + s, to + s).catch(() => {});
}

/** The plain reconstruct refuses, naming --checksum, once the backup is back. */
async function assertPlainReconstructRefused(sys: System): Promise<void> {
  await sys.restartBackup();
  await sys.waitMirroring();
  const { code, output } = await sys.reconstruct();
  assert.equal(code, 1, output);
  assert.match(output, /--checksum/, output);
  assert.match(output, /needs a checksum resync/, output);
}

Deno.test("the tracker's KV deleted while marked: checksum resync needed, later writes marked, plain reconstruct refused", async () => {
  const sys = await startSystem({ sizeBytes: 16 * mib, hostArgs: ["--predict-regions", "0"] });
  const host = new HostClient(sys.host.url);
  const kv = `${sys.dir}/tracker.kv`;
  try {
    await sys.waitMirroring();
    await host.write(sys.volume, 0, new Uint8Array(4096).fill(1)); // mirrored
    await sys.backup.kill();
    await host.write(sys.volume, 2 * mib, new Uint8Array(4096).fill(2)); // marked, then cached
    assert.equal((await trackerVolume(sys)).dirtyRegions, 1);
    assert.equal((await hostVolume(sys)).trust, "trusted");

    await sys.tracker.kill();
    await removeKv(kv);
    await sys.restartTracker(); // an empty KV: the record and its marks are gone

    // The next mark finds the volume unknown, registers it again and sees the new generation.
    await host.write(sys.volume, 4 * mib, new Uint8Array(4096).fill(3));
    const v = await waitTrust(sys, "checksum-resync-needed");
    assert.match(v.trustReason!, /was lost/);
    await waitLogged(sys.host, /volume "vol0": .*CHECKSUM RESYNC NEEDED/);
    const metrics = await (await fetch(`${sys.host.url}/metrics`)).text();
    assert.match(
      metrics,
      /trackmirror_host_volume_trust\{volume="vol0",trust="checksum-resync-needed"\} 1/,
    );
    assert.match(metrics, /trackmirror_host_volume_trust\{volume="vol0",trust="trusted"\} 0/);
    const before = (await trackerVolume(sys)).dirtyRegions;
    // The region marked before the loss was cached: now it must be marked again.
    await host.write(sys.volume, 2 * mib, new Uint8Array(4096).fill(4));
    assert.equal((await trackerVolume(sys)).dirtyRegions, before + 1);

    await assertPlainReconstructRefused(sys);
  } finally {
    await sys.stop();
  }
});

Deno.test("the tracker's KV deleted while mirroring: the next write's activity mark registers the volume again, not a failed write", async () => {
  // The default lease (30 s) is far longer than this test: only the 404 path can register again.
  const sys = await startSystem({ sizeBytes: 16 * mib, hostArgs: ["--predict-regions", "0"] });
  const host = new HostClient(sys.host.url);
  const kv = `${sys.dir}/tracker.kv`;
  try {
    await sys.waitMirroring();
    await host.write(sys.volume, 0, new Uint8Array(4096).fill(1)); // mirrored, activity marked
    await sys.tracker.kill();
    await removeKv(kv);
    await sys.restartTracker(); // an empty KV: the record is gone
    const gone = await fetch(`${sys.tracker.url}/v1/volumes/${sys.volume}`);
    assert.equal(gone.status, 404, await gone.text());

    // Another activity unit: its mark finds the volume unknown, registers it, and is retried.
    const data = new Uint8Array(4096).fill(2);
    await host.write(sys.volume, 12 * mib, data);
    assert.deepEqual(await host.read(sys.volume, 12 * mib, 4096), data);
    const info = await trackerVolume(sys);
    assert.equal(info.sizeBytes, 16 * mib);
    const v = await waitTrust(sys, "checksum-resync-needed");
    assert.equal(v.registered, true);
    assert.match(v.trustReason!, /was lost/);
  } finally {
    await sys.stop();
  }
});

Deno.test("the tracker's KV replaced by an older copy: the lower mark sequence is noticed", async () => {
  const sys = await startSystem({ sizeBytes: 16 * mib, hostArgs: ["--predict-regions", "0"] });
  const host = new HostClient(sys.host.url);
  const kv = `${sys.dir}/tracker.kv`;
  try {
    await sys.waitMirroring();
    await sys.backup.kill();
    await host.write(sys.volume, 1 * mib, new Uint8Array(4096).fill(1));
    await sys.tracker.stop();
    await copyKv(kv, `${sys.dir}/old.kv`); // the copy knows one mark
    await sys.restartTracker();
    await host.write(sys.volume, 3 * mib, new Uint8Array(4096).fill(2));
    await host.write(sys.volume, 5 * mib, new Uint8Array(4096).fill(3));
    const seen = (await hostVolume(sys)).generations!.markSeq;
    assert.ok(seen >= 3, `the host saw mark sequence ${seen}`);
    await sys.tracker.stop();
    await copyKv(`${sys.dir}/old.kv`, kv);
    await sys.restartTracker();
    assert.ok((await trackerVolume(sys)).markSeq! < seen, "the copy is older");

    await host.write(sys.volume, 7 * mib, new Uint8Array(4096).fill(4));
    const v = await waitTrust(sys, "checksum-resync-needed");
    assert.match(v.trustReason!, /older copy/);
    const before = (await trackerVolume(sys)).dirtyRegions;
    await host.write(sys.volume, 5 * mib, new Uint8Array(4096).fill(5)); // cached before, lost now
    assert.equal((await trackerVolume(sys)).dirtyRegions, before + 1);

    await assertPlainReconstructRefused(sys);
  } finally {
    await sys.stop();
  }
});

Deno.test("a second agent with another primary for the same volume is in split brain and refuses a plain resync", async () => {
  const sys = await startSystem({ sizeBytes: 16 * mib });
  const second = `${sys.dir}/primary/second.img`;
  let other: ServiceProcess | undefined;
  try {
    await sys.waitMirroring();
    const first = await hostVolume(sys);
    // The same (default) host id, another primary image, taking the lease over (without
    // --takeover the tracker refuses it: tests/integration_split_brain.test.ts).
    other = await startService("host/main.ts", [
      "--takeover",
      "--nbd-port",
      "0",
      "--tracker",
      sys.tracker.url,
      "--backup",
      sys.backup.url,
      "--volume",
      `${sys.volume}=${second}:${sys.sizeBytes}`,
    ]);
    const v = await waitTrust({ host: other }, "split-brain");
    assert.match(
      v.trustReason!,
      new RegExp(`written by primary generation ${first.generations!.primary}`),
    );
    assert.match(v.trustReason!, /--checksum --discard-secondary/);
    await waitLogged(other, /volume "vol0": .*SPLIT BRAIN/);

    // reconstruct reaches the newcomer (it took the owner URL) although the tracker holds no
    // dirty region: refused, naming the way out.
    assert.equal((await trackerVolume(sys)).dirtyRegions, 0);
    // The first agent stops, so its lease renewal cannot take the owner URL back meanwhile.
    await sys.host.stop();
    assert.equal((await trackerVolume(sys)).ownerUrl, other.url);
    const { code, output } = await sys.reconstruct();
    assert.equal(code, 1, output);
    assert.match(output, /split brain/);
    assert.match(output, /deno task reconstruct --volume vol0 --checksum --discard-secondary/);

    // Its writes go on, marked at the tracker instead of mirrored.
    await new HostClient(other.url).write(sys.volume, 6 * mib, new Uint8Array(4096).fill(9));
    assert.equal((await trackerVolume(sys)).dirtyRegions, 1);
  } finally {
    await other?.stop();
    await sys.stop();
  }
});
