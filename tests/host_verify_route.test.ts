/**
 * The host's verify route through `app.request()`: 404 for an unknown volume, 503 while the backup
 * is away, 409 while a resync of the volume runs, 202 and the progress's wire shape otherwise.
 */
import assert from "node:assert/strict";
import { HostAgent } from "../host/agent/host_agent.ts";
import { createHostApp, type HostApp } from "../host/app.ts";
import { ManualClock } from "../src/clock.ts";
import { verifyProgress } from "../src/host_schemas.ts";
import { type ChecksumRequest, hashRegions } from "../src/region_checksums.ts";
import { FakeBackup, FakeTracker } from "./support/fake_ports.ts";
import { type Gate, gate, settled } from "./support/gate.ts";
import { StepTimers } from "./support/step_timers.ts";

const region = 64 * 1024;
const sizeBytes = 16 * region;

/** A fake backup whose secondary is all zeroes; checksum answers wait for `hold` when set. */
class ChecksumBackup extends FakeBackup {
  hold: Gate | undefined;
  calls = 0;
  async checksums(_volume: string, req: ChecksumRequest): Promise<Uint8Array> {
    this.calls++;
    if (this.hold) await this.hold.opened;
    return hashRegions(new Uint8Array(req.length), req.regionBytes);
  }
}

async function withApp(
  fn: (app: HostApp, timers: StepTimers, backup: ChecksumBackup) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir();
  const timers = new StepTimers();
  const backup = new ChecksumBackup();
  const agent = await HostAgent.open({
    hostId: "host0",
    advertiseUrl: "http://127.0.0.1:1",
    volumes: [{ name: "vol0", path: `${dir}/vol0.img`, sizeBytes }],
    regionBytes: region,
    tracker: new FakeTracker(),
    backup,
    clock: new ManualClock(),
    probe: { timers },
    linkFactory: backup.linkFactory,
  });
  try {
    await fn(createHostApp(agent), timers, backup);
  } finally {
    backup.hold?.open();
    await agent.close();
    await Deno.remove(dir, { recursive: true });
  }
}

async function errorOf(res: Response): Promise<{ status: number; message: string }> {
  const body = await res.json();
  assert.equal(body.error.status, res.status);
  return body.error;
}

const post = (app: HostApp, path: string, json?: unknown) =>
  app.request(
    path,
    json === undefined ? { method: "POST" } : {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(json),
    },
  );

Deno.test("verify of an unknown volume is a 404 naming it and the host", async () => {
  await withApp(async (app) => {
    for (
      const res of [
        await app.request("/v1/volumes/nope/verify"),
        await post(app, "/v1/volumes/nope/verify"),
      ]
    ) {
      assert.equal(res.status, 404);
      assert.equal((await errorOf(res)).message, 'Volume "nope" is not served by host "host0"');
    }
  });
});

Deno.test("verify is refused with 503 while the backup is away, and starts nothing", async () => {
  await withApp(async (app, _timers, backup) => {
    const refused = await post(app, "/v1/volumes/vol0/verify");
    assert.equal(refused.status, 503);
    assert.equal(
      (await errorOf(refused)).message,
      'Cannot verify volume "vol0": backup is probing',
    );
    assert.equal(backup.calls, 0);
    const progress = verifyProgress.parse(
      await (await app.request("/v1/volumes/vol0/verify")).json(),
    );
    assert.equal(progress.state, "idle");
  });
});

Deno.test("verify is refused with 409 while a resync of the volume runs", async () => {
  await withApp(async (app, timers, backup) => {
    timers.fire();
    await settled();
    backup.hold = gate();
    const resync = await post(app, "/v1/volumes/vol0/resync", { mode: "checksum" });
    assert.equal(resync.status, 202);
    const refused = await post(app, "/v1/volumes/vol0/verify");
    assert.equal(refused.status, 409);
    assert.equal(
      (await errorOf(refused)).message,
      'Cannot verify volume "vol0": a checksum resync of it is running; verify once it is done',
    );
    backup.hold.open();
  });
});

Deno.test("a verify request with a body is a 400 naming it, and starts nothing", async () => {
  await withApp(async (app, timers, backup) => {
    timers.fire();
    await settled();
    const res = await post(app, "/v1/volumes/vol0/verify", { mode: "fast" });
    assert.equal(res.status, 400);
    assert.equal(
      (await errorOf(res)).message,
      'Verify request of volume "vol0" takes no body; got "{\\"mode\\":\\"fast\\"}"',
    );
    assert.equal(backup.calls, 0);
  });
});

Deno.test("verify answers 202 with its progress, and GET shows it done with no difference", async () => {
  await withApp(async (app, timers) => {
    timers.fire();
    await settled();
    const started = await post(app, "/v1/volumes/vol0/verify");
    assert.equal(started.status, 202);
    const first = verifyProgress.parse(await started.json());
    assert.equal(first.volume, "vol0");
    assert.equal(first.regionsTotal, 16);
    let progress = first;
    for (let turns = 0; progress.state === "running" && turns < 10_000; turns++) {
      await settled();
      progress = verifyProgress.parse(await (await app.request("/v1/volumes/vol0/verify")).json());
    }
    assert.equal(progress.state, "done", progress.error ?? "");
    assert.equal(progress.regionsCompared, 16);
    assert.equal(progress.regionsDiffering, 0);
    assert.deepEqual(progress.extents, []);
  });
});
