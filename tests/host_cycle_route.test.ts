/**
 * The cycle route (issue 10 item 2) through `app.request()`: `POST|GET /v1/volumes/{name}/cycle`
 * refuses a journal-mode volume (409), an unknown one (404), a second cycle while one runs (409),
 * a body (400) and the backup away (503); the status document names each volume's mirror mode.
 */
import assert from "node:assert/strict";
import { HostAgent } from "../host/agent/host_agent.ts";
import { createHostApp, type HostApp } from "../host/app.ts";
import { ManualClock } from "../src/clock.ts";
import { cycleProgress, hostStatus } from "../src/host_schemas.ts";
import type { LogPage } from "../src/schemas.ts";
import { FakeBackup, FakeTracker } from "./support/fake_ports.ts";
import { gate } from "./support/gate.ts";
import { StepTimers } from "./support/step_timers.ts";

const region = 64 * 1024;
const sizeBytes = 16 * region;

const settle = () => new Promise((r) => setTimeout(r, 0));

async function withApp(
  fn: (app: HostApp, timers: StepTimers, tracker: FakeTracker) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir();
  const timers = new StepTimers();
  const backup = new FakeBackup();
  const tracker = new FakeTracker();
  const agent = await HostAgent.open({
    hostId: "host0",
    advertiseUrl: "http://127.0.0.1:1",
    volumes: [
      { name: "vol0", path: `${dir}/vol0.img`, sizeBytes },
      { name: "vol1", path: `${dir}/vol1.img`, sizeBytes, mirror: "cycles" },
    ],
    regionBytes: region,
    tracker,
    backup,
    clock: new ManualClock(),
    probe: { timers },
    linkFactory: backup.linkFactory,
    cycleIntervalMs: 24 * 3600 * 1000,
  });
  try {
    await fn(createHostApp(agent), timers, tracker);
  } finally {
    await agent.close();
    await Deno.remove(dir, { recursive: true });
  }
}

async function errorOf(res: Response): Promise<{ status: number; message: string }> {
  const body = await res.json();
  assert.equal(body.error.status, res.status);
  return body.error;
}

Deno.test("the cycle route refuses a journal-mode volume, an unknown one, a body, and the backup away", async () => {
  await withApp(async (app, timers) => {
    for (const method of ["POST", "GET"]) {
      const journal = await app.request("/v1/volumes/vol0/cycle", { method });
      assert.equal(journal.status, 409);
      assert.match(
        (await errorOf(journal)).message,
        /"vol0" is mirrored in journal mode.*--mirror vol0=cycles/,
      );
    }
    const unknown = await app.request("/v1/volumes/vol9/cycle", { method: "POST" });
    assert.equal(unknown.status, 404);
    assert.match((await errorOf(unknown)).message, /"vol9"/);
    const away = await app.request("/v1/volumes/vol1/cycle", { method: "POST" });
    assert.equal(away.status, 503);
    assert.match(
      (await errorOf(away)).message,
      /Cannot run a cycle of volume "vol1": the backup is not online/,
    );
    timers.fire();
    await settle();
    const body = await app.request("/v1/volumes/vol1/cycle", {
      method: "POST",
      body: '{"now":true}',
    });
    assert.equal(body.status, 400);
    assert.match((await errorOf(body)).message, /takes no body; got "\{\\"now\\":true\}"/);
    assert.equal(
      cycleProgress.parse(await (await app.request("/v1/volumes/vol1/cycle")).json()).cycleSeq,
      0,
    );
  });
});

Deno.test("a cycle runs on POST (202), a second POST while it runs is 409, GET shows it done", async () => {
  await withApp(async (app, timers, tracker) => {
    timers.fire();
    await settle();
    const held = gate();
    tracker.log = async function* (name: string): AsyncGenerator<LogPage> {
      await held.opened;
      yield {
        volume: name,
        regionBytes: region,
        sizeBytes,
        token: "1",
        extents: [],
        nextCursor: null,
      };
    };
    const started = await app.request("/v1/volumes/vol1/cycle", { method: "POST" });
    assert.equal(started.status, 202);
    const p = cycleProgress.parse(await started.json());
    assert.equal(p.state, "running");
    assert.equal(p.cycleSeq, 1);
    const again = await app.request("/v1/volumes/vol1/cycle", { method: "POST" });
    assert.equal(again.status, 409);
    assert.match((await errorOf(again)).message, /A cycle of volume "vol1" is already running/);
    held.open();
    await settle();
    const done = cycleProgress.parse(await (await app.request("/v1/volumes/vol1/cycle")).json());
    assert.equal(done.state, "done", done.error ?? "");
    assert.equal(done.cycleSeq, 1);
    assert.ok(done.pointInTime !== null);
  });
});

Deno.test("the status document names each volume's mirror mode and its cycle", async () => {
  await withApp(async (app) => {
    const status = hostStatus.parse(await (await app.request("/v1/status")).json());
    const [journal, cycles] = status.volumes;
    assert.equal(journal.mirror, "journal");
    assert.equal(journal.cycle, null);
    assert.equal(cycles.mirror, "cycles");
    assert.equal(cycles.cycle?.intervalMs, 24 * 3600 * 1000);
    assert.equal(cycles.activity, null, "cycle mode keeps no activity marks");
  });
});
