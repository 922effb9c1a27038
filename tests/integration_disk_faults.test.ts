/**
 * Honest status under disk errors, with real processes on loopback and the test-only fault file
 * (TRACKMIRROR_FAULT_FILE): a journal that fails with ENOSPC, a journal that fills up because the
 * secondaries cannot be written, and a primary that fails with EIO / ENOSPC. The host must say
 * `degraded` (not online), keep acknowledging writes through tracker marks without a backup round
 * trip per write, come back online when the disk heals, and after reconstruct the SHA-256 of the
 * primary and the secondary must be equal.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startSystem, type System } from "../harness/system.ts";
import { faultFileEnv, faultRecheckMs } from "../src/fault_file.ts";
import type { HostStatus } from "../src/host_schemas.ts";
import { randomBytes, seededRandom } from "../src/random.ts";
import { TrackerClient } from "../tracker/client.ts";
import { RawNbdClient } from "./support/nbd_raw_client.ts";

const seed = Number(Deno.env.get("TRACKMIRROR_SEED") ?? Date.now() % 1_000_000);
const region = 64 * 1024;
/** How long the host may take to report a state (probe backoff tops out at 5 s). */
const stateBoundMs = 15_000;

interface FaultRig {
  sys: System;
  setFaults(lines: string[]): Promise<void>;
}

async function withFaults(
  fn: (r: FaultRig) => Promise<void>,
  opts: { backupArgs?: string[]; hostArgs?: string[] } = {},
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "trackmirror-faults-" });
  const faultPath = join(dir, "faults");
  const sys = await startSystem({
    sizeBytes: 16 * 1024 * 1024,
    env: { [faultFileEnv]: faultPath },
    ...opts,
  });
  const setFaults = async (lines: string[]) => {
    await Deno.writeTextFile(faultPath, lines.join("\n") + "\n");
    await new Promise((r) => setTimeout(r, faultRecheckMs * 2)); // seen by both processes
  };
  try {
    await fn({ sys, setFaults });
  } catch (err) {
    console.error(
      `seed ${seed}\n--- host output ---\n${sys.host.output()}\n` +
        `--- backup output ---\n${sys.backup.output()}`,
    );
    throw err;
  } finally {
    await sys.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

async function hostStatus(sys: System): Promise<HostStatus> {
  return await (await fetch(`${sys.host.url}/v1/status`)).json();
}

/** Polls the host's status until `ok` holds; fails naming `what` after `stateBoundMs`. */
async function untilStatus(
  sys: System,
  ok: (s: HostStatus) => boolean,
  what: string,
): Promise<HostStatus> {
  const deadline = Date.now() + stateBoundMs;
  for (;;) {
    const s = await hostStatus(sys);
    if (ok(s)) return s;
    if (Date.now() > deadline) {
      throw new Error(`Host did not reach ${what} in ${stateBoundMs} ms: ${JSON.stringify(s)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** One sample of a metric family (with an optional label filter) from `GET /metrics`. */
async function metric(url: string, name: string, label = ""): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const escaped = label.replace(/[{}"]/g, (c) => `\\${c}`);
  const m = new RegExp(`^${name}${escaped} ([0-9.e+]+)$`, "m").exec(text);
  return m ? Number(m[1]) : 0;
}

/** Writes `data` at `offset` over HTTP; returns the status and the error body, if any. */
async function put(sys: System, offset: number, data: Uint8Array) {
  const res = await fetch(`${sys.host.url}/v1/volumes/${sys.volume}/data?offset=${offset}`, {
    method: "PUT",
    body: data as Uint8Array<ArrayBuffer>,
  });
  const body = res.status === 204 ? null : await res.json();
  return { status: res.status, message: body?.error?.message as string | undefined };
}

/**
 * What every byte of the primary must be: the image the acknowledged writes make, in order, over
 * the zeros of a new volume. A refused write must leave no trace in the primary.
 */
class Model {
  readonly image: Uint8Array;
  writes = 0;
  constructor(private readonly sys: System) {
    this.image = new Uint8Array(sys.sizeBytes);
  }
  /** Writes over HTTP and expects the acknowledgement. */
  async write(offset: number, data: Uint8Array): Promise<void> {
    const r = await put(this.sys, offset, data);
    assert.equal(r.status, 204, `write at ${offset} was not acknowledged: ${r.message}`);
    this.acknowledged(offset, data);
  }
  /** Records a write acknowledged by another path (NBD). */
  acknowledged(offset: number, data: Uint8Array): void {
    this.image.set(data, offset);
    this.writes++;
  }
  async checkPrimary(): Promise<void> {
    const primary = await Deno.readFile(this.sys.primaryPath);
    const at = primary.findIndex((b, i) => b !== this.image[i]);
    assert.equal(at, -1, `primary differs from the model of ${this.writes} writes at byte ${at}`);
  }
}

/** Heal → online → reconstruct → flush → the images are equal. */
async function healAndConverge(r: FaultRig): Promise<void> {
  await r.setFaults([]);
  await untilStatus(r.sys, (s) => s.components.backup.state === "online", "backup online");
  const { code, output } = await r.sys.reconstruct();
  assert.equal(code, 0, output);
  assert.equal(
    (await new TrackerClient(r.sys.tracker.url).getVolume(r.sys.volume)).dirtyRegions,
    0,
  );
  await r.sys.flushBackup();
  assert.equal(await r.sys.sha256Secondary(), await r.sys.sha256Primary());
}

Deno.test("journal ENOSPC: the host reports the backup degraded, tracks writes without backup round trips, converges after heal", async (t) => {
  for (const ack of ["durable", "received"]) {
    await t.step(`--ack ${ack}`, async () => {
      await withFaults(async (r) => {
        const { sys } = r;
        const rand = seededRandom(seed);
        const model = new Model(sys);
        await sys.waitMirroring();
        for (let i = 0; i < 8; i++) await model.write(i * region, randomBytes(rand, 5000));

        await r.setFaults(["journal=enospc"]);
        const first = performance.now();
        await model.write(10 * region + 7, randomBytes(rand, 3000)); // pays the one failed round trip
        const s = await untilStatus(
          sys,
          (s) => s.components.backup.state === "degraded",
          "backup degraded",
        );
        console.log(`degraded after ${Math.round(performance.now() - first)} ms`);
        assert.equal(s.mode, "tracking");
        assert.match(s.components.backup.lastError!, /No space left on device/);
        assert.equal(
          await metric(sys.host.url, "trackmirror_host_backup_state", '{state="degraded"}'),
          1,
        );
        const backupStatus = await (await fetch(`${sys.backup.url}/v1/status`)).json();
        assert.equal(backupStatus.state, "degraded");
        assert.match(backupStatus.reason, /^Journal write failed: .*No space left on device/);

        const framesBefore = await metric(sys.backup.url, "trackmirror_backup_link_frames_total");
        const trackedBefore = await metric(
          sys.host.url,
          "trackmirror_host_writes_total",
          '{volume="vol0",outcome="tracker"}',
        );
        for (let i = 0; i < 30; i++) {
          await model.write(
            Math.floor(rand() * (sys.sizeBytes - 70_000)),
            randomBytes(rand, 60_000),
          );
        }
        assert.equal(
          await metric(sys.backup.url, "trackmirror_backup_link_frames_total"),
          framesBefore,
          "a write reached the degraded backup",
        );
        assert.equal(
          await metric(
            sys.host.url,
            "trackmirror_host_writes_total",
            '{volume="vol0",outcome="tracker"}',
          ),
          trackedBefore + 30,
        );
        assert.equal((await hostStatus(sys)).components.backup.state, "degraded");

        await healAndConverge(r);
        await model.checkPrimary();
      }, { hostArgs: ["--ack", ack] });
    });
  }
});

Deno.test("journal full (the secondaries cannot be written): degraded with the reason, writes tracked, converges after heal", async () => {
  await withFaults(async (r) => {
    const { sys } = r;
    const rand = seededRandom(seed + 1);
    const model = new Model(sys);
    await sys.waitMirroring();
    await r.setFaults(["secondary=eio"]);
    // 4 MiB of journal: 60 kB writes overrun it; the link's credit runs out, its ack timeout
    // (1 s here) fails it, and the probe finds the journal full. (A journal must hold one resync
    // chunk, 1 MiB, for reconstruct to get through it.)
    // The host first sees the link time out (offline), then its probe reads the backup's status.
    let i = 0;
    while ((await hostStatus(sys)).components.backup.state === "online") {
      assert.ok(i < 200, "the journal never filled");
      await model.write((i++ % 128) * region, randomBytes(rand, 60_000));
    }
    const s = await untilStatus(
      sys,
      (s) => s.components.backup.state === "degraded",
      "backup degraded",
    );
    assert.match(s.components.backup.lastError!, /Journal full/);
    const backupStatus = await (await fetch(`${sys.backup.url}/v1/status`)).json();
    assert.match(backupStatus.applierError, /Input\/output error/);

    const framesBefore = await metric(sys.backup.url, "trackmirror_backup_link_frames_total");
    for (let i = 0; i < 20; i++) {
      await model.write(64 * region + i * region, randomBytes(rand, 60_000));
    }
    assert.equal(
      await metric(sys.backup.url, "trackmirror_backup_link_frames_total"),
      framesBefore,
      "a write reached the full journal",
    );
    await healAndConverge(r);
    await model.checkPrimary();
  }, { backupArgs: ["--journal-bytes-max", "4MiB"], hostArgs: ["--link-ack-timeout-ms", "1000"] });
});

Deno.test("primary EIO / ENOSPC: the write fails with the errno over HTTP and NBD, is marked, and the images converge", async () => {
  await withFaults(async (r) => {
    const { sys } = r;
    const rand = seededRandom(seed + 2);
    const model = new Model(sys);
    await sys.waitMirroring();
    await model.write(0, randomBytes(rand, 9000));
    const nbdPort = Number(new URL(sys.nbdUri.replace(/^nbd:/, "http:")).port);
    const nbd = await RawNbdClient.connect({ port: nbdPort });
    try {
      await nbd.start();
      await nbd.go(sys.volume, { structured: true });

      await r.setFaults(["primary=eio"]);
      const http = await put(sys, 20 * region, randomBytes(rand, 4096));
      assert.equal(http.status, 500);
      assert.match(http.message!, /primary refused it .*Input\/output error/);
      assert.match(http.message!, /marked at the tracker/);
      const viaNbd = await nbd.write(30 * region + 11, randomBytes(rand, 4096));
      assert.equal(viaNbd.error, 5, "NBD_EIO");
      assert.match(viaNbd.message!, /Input\/output error/);

      await r.setFaults(["primary=enospc"]);
      const full = await put(sys, 40 * region, randomBytes(rand, 4096));
      assert.equal(full.status, 507);
      assert.match(full.message!, /No space left on device/);
      const nbdFull = await nbd.write(50 * region, randomBytes(rand, 4096));
      assert.equal(nbdFull.error, 28, "NBD_ENOSPC");

      const s = await hostStatus(sys);
      assert.equal(s.components.backup.state, "online", "a primary error is not the backup's");
      assert.equal(s.volumes[0].primary.errors, 4);
      assert.match(s.volumes[0].primary.lastError!, /No space left on device/);
      assert.equal(s.volumes[0].writes!.primaryFailed, 4);
      assert.equal(
        await metric(sys.host.url, "trackmirror_host_primary_errors_total", '{volume="vol0"}'),
        4,
      );
      const dirty = await new TrackerClient(sys.tracker.url).getVolume(sys.volume);
      assert.ok(dirty.dirtyRegions >= 4, `the refused writes are marked (${dirty.dirtyRegions})`);
      // The backup journaled what the primary refused: the images differ until reconstruct.
      await sys.flushBackup();
      assert.notEqual(await sys.sha256Secondary(), await sys.sha256Primary());

      await model.checkPrimary(); // nothing of the refused writes reached the primary
      await r.setFaults([]);
      await model.write(60 * region, randomBytes(rand, 4096));
      const last = randomBytes(rand, 512);
      assert.equal((await nbd.write(70 * region, last)).error, 0);
      model.acknowledged(70 * region, last);
    } finally {
      nbd.close();
      await nbd.ended();
    }
    await healAndConverge(r);
    await model.checkPrimary();
  });
});
