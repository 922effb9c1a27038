/**
 * Split brain with the same host id (issue 9, item 2), with real processes: a second host agent
 * for a leased volume is refused naming the holder, a second agent on the same primary file
 * cannot even start, and after `--takeover` the first agent is fenced — its next writes fail
 * and are never acknowledged, its status says so — while the new owner's primary and the
 * secondary end equal after reconstruct (a fenced write reaching the secondary would break that).
 */
import assert from "node:assert/strict";
import { HostClient } from "../host/client.ts";
import { freePort, type ServiceProcess, startService } from "../harness/service_process.ts";
import { sha256File } from "../harness/tools.ts";
import { startSystem } from "../harness/system.ts";
import { hostStatus } from "../src/host_schemas.ts";
import { ServiceCallError } from "../src/http_client.ts";
import { randomBytes, seededRandom } from "../src/random.ts";
import { RawNbdClient } from "./support/nbd_raw_client.ts";

const MiB = 1024 * 1024;

Deno.test("a second agent for a leased volume is refused naming the holder; after --takeover the first one is fenced and never acknowledges again", async () => {
  const sys = await startSystem({ sizeBytes: 16 * MiB });
  const started: ServiceProcess[] = [];
  /** Starts another agent for the volume (same default host id) on `primary`. */
  const agent = (primary: string, extra: string[] = []) =>
    startService("host/main.ts", [
      "--nbd-port",
      String(freePort()),
      "--tracker",
      sys.tracker.url,
      "--backup",
      sys.backup.url,
      "--volume",
      `${sys.volume}=${primary}:${sys.sizeBytes}`,
      ...extra,
    ]).then((p) => (started.push(p), p));
  try {
    await sys.waitMirroring();
    const rand = seededRandom(9);
    const first = new HostClient(sys.host.url, { timeoutMs: 10_000 });
    await first.write(sys.volume, 0, randomBytes(rand, MiB));
    await first.write(sys.volume, 4 * MiB, randomBytes(rand, MiB));
    const firstStatus = hostStatus.parse(await (await fetch(`${sys.host.url}/v1/status`)).json());

    // The failover copy of the primary the new owner will serve (the first agent is idle).
    const other = `${sys.dir}/primary/other.img`;
    await Deno.copyFile(sys.primaryPath, other);

    const refused = await agent(other).then(() => "", (err: Error) => err.message);
    assert.match(
      refused,
      new RegExp(
        `Tracker refused volume "vol0": .*409: Volume "vol0" is leased to host "host0" \\(instance ` +
          `${firstStatus.instance}, ${sys.host.url.replaceAll(".", "\\.")}\\)`,
      ),
    );
    const locked = await agent(sys.primaryPath, ["--host-id", "host7"]).then(
      () => "",
      (err: Error) => err.message,
    );
    assert.match(locked, /Volume image ".*vol0\.img" is locked by another process/);

    // An application with the volume open over NBD on the first agent, from before the takeover.
    const nbd = await RawNbdClient.connect({ port: Number(new URL(sys.nbdUri).port) });
    await nbd.start();
    await nbd.go(sys.volume, { structured: true });

    const owner = await agent(other, ["--takeover"]);
    const second = new HostClient(owner.url, { timeoutMs: 10_000 });
    const deadline = Date.now() + 20_000;
    while ((await second.status()).mode !== "mirroring") {
      assert.ok(Date.now() < deadline, `the new owner never mirrored:\n${owner.output()}`);
      await new Promise((r) => setTimeout(r, 100));
    }

    // The first agent's next writes: a hot region (its link, fenced by the backup) and a cold
    // one (already fenced here). Neither is acknowledged, nor reaches its primary.
    const primaryBefore = await sha256File(sys.primaryPath);
    for (const offset of [0, 10 * MiB]) {
      const err = await first.write(sys.volume, offset, randomBytes(rand, 64 * 1024)).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(err instanceof ServiceCallError, `write at ${offset} was acknowledged`);
      assert.equal(err.status, 409, err.message);
      assert.match(err.message, /no longer holds volume "vol0" \(fenced since/);
    }
    // Once the agent looked the new holder up at the tracker, its refusals name it.
    const holder = `host "host0" (instance ${(await second.status()).instance}, ${owner.url})`;
    const lookedUp = Date.now() + 20_000;
    while ((await first.status()).volumes[0].fencedHolder !== holder) {
      assert.ok(Date.now() < lookedUp, "the fenced agent never named the new holder");
      await new Promise((r) => setTimeout(r, 50));
    }
    const named = await first.write(sys.volume, 0, new Uint8Array(512)).catch((e) => e);
    assert.ok(named instanceof ServiceCallError && named.status === 409);
    assert.ok(named.message.includes(`now held by ${holder}`), named.message);
    const nbdWrite = await nbd.write(2 * MiB, randomBytes(rand, 4096));
    nbd.close();
    assert.equal(nbdWrite.error, 5, "an NBD write to a fenced volume must fail with EIO");
    assert.match(nbdWrite.message ?? "", /no longer holds volume "vol0"/);
    assert.equal(await sha256File(sys.primaryPath), primaryBefore);
    const fenced = (await first.status()).volumes[0];
    assert.equal(fenced.fenced, true);
    assert.match(fenced.fencedReason ?? "", /Volume "vol0" is fenced: /);

    await second.write(sys.volume, 6 * MiB, randomBytes(rand, MiB));
    // Another primary took the volume: its generation is not the secondary's writer, so the
    // pair is in split brain and a plain reconstruct refuses; keeping the new owner's primary is
    // the operator's call (issue 9 item 1).
    const plain = await sys.reconstruct();
    assert.equal(plain.code, 1, plain.output);
    assert.match(plain.output, /--checksum --discard-secondary/);
    const { code, output } = await sys.reconstruct([
      "--volume",
      sys.volume,
      "--checksum",
      "--discard-secondary",
    ]);
    assert.equal(code, 0, output);
    await sys.flushBackup();
    assert.equal(await sys.sha256Secondary(), await sha256File(other));
    assert.equal((await second.status()).volumes[0].fenced, false);
  } finally {
    for (const p of started) await p.stop();
    await sys.stop();
  }
});

Deno.test("a host agent restarted after the tracker lost its record claims the backup's lease epoch and is not fenced", async () => {
  const sys = await startSystem({ sizeBytes: 8 * MiB });
  try {
    await sys.waitMirroring();
    const rand = seededRandom(11);
    await new HostClient(sys.host.url).write(sys.volume, 0, randomBytes(rand, 64 * 1024));
    await sys.restartHost(); // a new instance: lease epoch 2 at the tracker and the backup
    await sys.waitMirroring();
    await sys.tracker.kill();
    for await (const e of Deno.readDir(sys.dir)) {
      if (e.name.startsWith("tracker.kv")) await Deno.remove(`${sys.dir}/${e.name}`);
    }
    await sys.restartTracker();
    await sys.restartHost(); // the fresh tracker alone would hand out lease epoch 1
    await sys.waitMirroring();
    const host = new HostClient(sys.host.url, { timeoutMs: 10_000 });
    await host.write(sys.volume, 0, randomBytes(rand, 64 * 1024));
    const [volume] = (await host.status()).volumes;
    assert.equal(volume.fenced, false, volume.fencedReason ?? "");
    assert.equal(volume.leaseEpoch, 2);
    assert.equal(volume.writes?.viaBackup, 1);
  } finally {
    await sys.stop();
  }
});
