/**
 * `POST /v1/volumes/{name}/resync` with its optional body through `app.request()`: no body is a
 * plain resync (existing clients), `{"mode":"checksum"}` a checksum resync whose counts the
 * progress shows, and a bad body a 400 naming the value, with nothing started.
 */
import assert from "node:assert/strict";
import { HostAgent } from "../host/agent/host_agent.ts";
import { createHostApp, type HostApp } from "../host/app.ts";
import { HostClient } from "../host/client.ts";
import { ManualClock } from "../src/clock.ts";
import { resyncProgress } from "../src/host_schemas.ts";
import { type ChecksumRequest, hashRegions } from "../src/region_checksums.ts";
import { FakeBackup, FakeTracker } from "./support/fake_ports.ts";
import { gate, settled } from "./support/gate.ts";
import { StepTimers } from "./support/step_timers.ts";

const region = 64 * 1024;
const sizeBytes = 16 * region;

/** A backup whose secondary is all zeros: every region the primary holds data in differs. */
class ZeroSecondaryBackup extends FakeBackup {
  checksumCalls: ChecksumRequest[] = [];
  checksums(_volume: string, req: ChecksumRequest): Promise<Uint8Array> {
    this.checksumCalls.push(req);
    return hashRegions(new Uint8Array(req.length), req.regionBytes);
  }
}

async function withApp(
  backup: FakeBackup,
  fn: (app: HostApp, agent: HostAgent) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir();
  const timers = new StepTimers();
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
    timers.fire(); // the backup comes online
    await settled();
    await fn(createHostApp(agent), agent);
  } finally {
    await agent.close();
    await Deno.remove(dir, { recursive: true });
  }
}

function startResync(app: HostApp, body?: string): Promise<Response> {
  const init: RequestInit = { method: "POST" };
  if (body !== undefined) {
    init.body = body;
    init.headers = { "content-type": "application/json" };
  }
  return Promise.resolve(app.request("/v1/volumes/vol0/resync", init));
}

async function finalProgress(app: HostApp) {
  for (;;) {
    const p = resyncProgress.parse(await (await app.request("/v1/volumes/vol0/resync")).json());
    if (p.state !== "running") return p;
    await settled();
  }
}

Deno.test("a checksum resync request compares every region and ships those that differ", async () => {
  const backup = new ZeroSecondaryBackup();
  await withApp(backup, async (app, agent) => {
    // Written straight to the primary: the backup never saw it (like a lost tracker record).
    await agent.volume("vol0")!.primary.write(5 * region, new Uint8Array(10).fill(1));
    const started = await startResync(app, JSON.stringify({ mode: "checksum" }));
    assert.equal(started.status, 202);
    assert.equal(resyncProgress.parse(await started.json()).mode, "checksum");
    const done = await finalProgress(app);
    assert.equal(done.state, "done", done.error ?? "");
    assert.equal(done.mode, "checksum");
    assert.equal(done.regionsCompared, 16);
    assert.equal(done.regionsShipped, 1);
    assert.equal(done.regionsSkipped, 15);
    assert.equal(done.bytesShipped, region);
    assert.ok(backup.checksumCalls.length > 0);
    const status = await (await app.request("/v1/status")).json();
    assert.equal(status.volumes[0].resync.mode, "checksum", "status shows the latest resync");
  });
});

Deno.test("a resync request without a body is a plain resync, as before", async () => {
  const backup = new ZeroSecondaryBackup();
  await withApp(backup, async (app) => {
    const started = await startResync(app);
    assert.equal(started.status, 202);
    const done = await finalProgress(app);
    assert.equal(done.state, "done");
    assert.equal(done.mode, undefined);
    assert.equal(backup.checksumCalls.length, 0, "a plain resync compares nothing");
  });
});

Deno.test("a bad resync body is a 400 naming the value, and starts nothing", async (t) => {
  const backup = new ZeroSecondaryBackup();
  await withApp(backup, async (app) => {
    const cases: [string, string, RegExp][] = [
      ["unknown mode", '{"mode":"full"}', /mode = "full"/],
      ["not JSON", "checksum", /"checksum" is not JSON/],
      ["unknown field", '{"mode":"checksum","fast":true}', /fast/],
    ];
    for (const [name, body, message] of cases) {
      await t.step(name, async () => {
        const res = await startResync(app, body);
        assert.equal(res.status, 400);
        const err = await res.json();
        assert.equal(err.error.status, 400);
        assert.match(err.error.message, message);
      });
    }
    assert.equal(backup.checksumCalls.length, 0);
    const p = resyncProgress.parse(await (await app.request("/v1/volumes/vol0/resync")).json());
    assert.equal(p.state, "idle");
  });
});

Deno.test("a checksum resync through a backup without checksums fails, saying so", async () => {
  await withApp(new FakeBackup(), async (app) => {
    assert.equal((await startResync(app, '{"mode":"checksum"}')).status, 202);
    const done = await finalProgress(app);
    assert.equal(done.state, "failed");
    assert.match(done.error ?? "", /offers no region checksums/);
  });
});

Deno.test("the host client sends the checksum mode and no body for a plain resync", async () => {
  const backup = new ZeroSecondaryBackup();
  await withApp(backup, async (app) => {
    const seen: string[] = [];
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      async (req) => {
        const body = await req.text();
        seen.push(body);
        return app.fetch(new Request(req.url, { method: req.method, headers: req.headers, body }));
      },
    );
    try {
      const client = new HostClient(`http://127.0.0.1:${server.addr.port}`);
      await client.startResync("vol0");
      await finalProgress(app);
      assert.equal((await client.startResync("vol0", { mode: "checksum" })).mode, "checksum");
      await finalProgress(app);
    } finally {
      await server.shutdown();
    }
    assert.deepEqual(seen, ["", '{"mode":"checksum"}']);
  });
});

Deno.test("a plain resync is refused with 409 while a checksum resync runs", async () => {
  const held = gate();
  class HeldBackup extends ZeroSecondaryBackup {
    override async checksums(volume: string, req: ChecksumRequest): Promise<Uint8Array> {
      await held.opened;
      return super.checksums(volume, req);
    }
  }
  await withApp(new HeldBackup(), async (app) => {
    assert.equal((await startResync(app, '{"mode":"checksum"}')).status, 202);
    const refused = await startResync(app);
    assert.equal(refused.status, 409);
    assert.match(
      (await refused.json()).error.message,
      /Cannot start a plain resync of volume "vol0": a checksum resync is running/,
    );
    held.open();
    assert.equal((await finalProgress(app)).state, "done");
  });
});
