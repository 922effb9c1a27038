/**
 * The host's HTTP app through `app.request()` (no socket): data round-trip, edge validation naming
 * the bad value, the error shape, the status document and the resync routes.
 */
import assert from "node:assert/strict";
import { HostAgent } from "../host/agent/host_agent.ts";
import { createHostApp, type HostApp, httpIoBytesMax } from "../host/app.ts";
import { ManualClock } from "../src/clock.ts";
import { hostStatus, resyncProgress } from "../src/host_schemas.ts";
import { FakeBackup, FakeTracker } from "./support/fake_ports.ts";
import { StepTimers } from "./support/step_timers.ts";

const region = 64 * 1024;
const sizeBytes = 16 * region;

const settle = () => new Promise((r) => setTimeout(r, 0));

async function withApp(fn: (app: HostApp, timers: StepTimers) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  const timers = new StepTimers();
  const backup = new FakeBackup();
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
    await fn(createHostApp(agent), timers);
  } finally {
    await agent.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** The `{"error":{status,message}}` body of a refused request. */
async function errorOf(res: Response): Promise<{ status: number; message: string }> {
  const body = await res.json();
  assert.equal(body.error.status, res.status);
  return body.error;
}

Deno.test("bytes written over HTTP read back the same", async () => {
  await withApp(async (app) => {
    const data = new Uint8Array(1000).map((_, i) => i % 251);
    const put = await app.request("/v1/volumes/vol0/data?offset=4097", {
      method: "PUT",
      body: data,
    });
    assert.equal(put.status, 204);
    const get = await app.request("/v1/volumes/vol0/data?offset=4097&length=1000");
    assert.equal(get.status, 200);
    assert.equal(get.headers.get("content-type"), "application/octet-stream");
    assert.deepEqual(new Uint8Array(await get.arrayBuffer()), data);
  });
});

Deno.test("a bad offset, a bad name or a range past the end is a 400 naming the value", async () => {
  await withApp(async (app) => {
    const badOffset = await app.request("/v1/volumes/vol0/data?offset=-1&length=1");
    assert.equal(badOffset.status, 400);
    assert.match((await errorOf(badOffset)).message, /offset = "-1"/);

    const badName = await app.request("/v1/volumes/Vol!/data?offset=0&length=1");
    assert.equal(badName.status, 400);
    assert.match((await errorOf(badName)).message, /name = "Vol!"/);

    const past = await app.request(`/v1/volumes/vol0/data?offset=${sizeBytes - 1}`, {
      method: "PUT",
      body: new Uint8Array(2),
    });
    assert.equal(past.status, 400);
    assert.equal(
      (await errorOf(past)).message,
      `Range ${sizeBytes - 1}+2 exceeds volume "vol0" size ${sizeBytes}`,
    );

    const empty = await app.request("/v1/volumes/vol0/data?offset=0", { method: "PUT" });
    assert.equal(empty.status, 400);
    assert.match((await errorOf(empty)).message, /Length 0/);
  });
});

Deno.test("an unknown volume is a 404 naming it and the host", async () => {
  await withApp(async (app) => {
    for (
      const res of [
        await app.request("/v1/volumes/nope/data?offset=0&length=1"),
        await app.request("/v1/volumes/nope/resync"),
        await app.request("/v1/volumes/nope/resync", { method: "POST" }),
      ]
    ) {
      assert.equal(res.status, 404);
      assert.equal((await errorOf(res)).message, 'Volume "nope" is not served by host "host0"');
    }
  });
});

Deno.test("reads and writes larger than httpIoBytesMax are a 413", async () => {
  await withApp(async (app) => {
    const read = await app.request(`/v1/volumes/vol0/data?offset=0&length=${httpIoBytesMax + 1}`);
    assert.equal(read.status, 413);
    assert.match((await errorOf(read)).message, /exceeds/);
    const write = await app.request("/v1/volumes/vol0/data?offset=0", {
      method: "PUT",
      body: new Uint8Array(httpIoBytesMax + 1),
    });
    assert.equal(write.status, 413);
    assert.equal((await errorOf(write)).message, `Write body exceeds ${httpIoBytesMax} bytes`);
  });
});

Deno.test("the status document has the wire schema's shape", async () => {
  await withApp(async (app, timers) => {
    const before = hostStatus.parse(await (await app.request("/v1/status")).json());
    assert.equal(before.mode, "tracking");
    assert.equal(before.components.backup.state, "probing");
    timers.fire();
    await settle();
    const after = hostStatus.parse(await (await app.request("/v1/status")).json());
    assert.equal(after.mode, "mirroring");
    assert.deepEqual(Object.keys(after), [
      "host",
      "url",
      "mode",
      "ack",
      "unhardened",
      "components",
      "volumes",
      "instance",
      "startedAt",
      "startedAtIso",
      "now",
      "nowIso",
    ]);
    assert.equal(after.startedAtIso, new Date(after.startedAt!).toISOString());
    assert.equal(
      after.components.backup.sinceIso,
      new Date(after.components.backup.since).toISOString(),
    );
    assert.deepEqual(after.volumes.map((v) => [v.name, v.sizeBytes, v.registered]), [
      ["vol0", sizeBytes, true],
    ]);
  });
});

Deno.test("resync is refused with 503 while the backup is away, accepted with 202 after", async () => {
  await withApp(async (app, timers) => {
    const refused = await app.request("/v1/volumes/vol0/resync", { method: "POST" });
    assert.equal(refused.status, 503);
    assert.equal(
      (await errorOf(refused)).message,
      'Cannot resync volume "vol0": backup is probing',
    );
    timers.fire();
    await settle();
    const started = await app.request("/v1/volumes/vol0/resync", { method: "POST" });
    assert.equal(started.status, 202);
    assert.equal(resyncProgress.parse(await started.json()).volume, "vol0");
    await settle();
    const progress = await app.request("/v1/volumes/vol0/resync");
    assert.equal(progress.status, 200);
    assert.equal(resyncProgress.parse(await progress.json()).state, "done");
  });
});

Deno.test("a bad resync body answers 400 naming the value and starts nothing", async () => {
  await withApp(async (app, timers) => {
    timers.fire();
    await settle();
    const post = (body: string) =>
      app.request("/v1/volumes/vol0/resync", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      });
    const cases: [string, RegExp][] = [
      ["{not json", /is not JSON/],
      [JSON.stringify({ mode: "fast" }), /mode = "fast"/],
      [JSON.stringify({ mode: "checksum", discardSecondary: "yes" }), /discardSecondary = "yes"/],
      [JSON.stringify({ discardSecondary: true }), /needs mode "checksum"/],
    ];
    for (const [body, message] of cases) {
      const res = await post(body);
      assert.equal(res.status, 400, body);
      assert.match((await errorOf(res)).message, message, body);
    }
    const progress = await app.request("/v1/volumes/vol0/resync");
    assert.equal(resyncProgress.parse(await progress.json()).state, "idle");
    const checksum = await post(JSON.stringify({ mode: "checksum" }));
    assert.equal(checksum.status, 202);
    assert.equal(resyncProgress.parse(await checksum.json()).mode, "checksum");
  });
});

Deno.test("the status document names each volume's trust and generations", async () => {
  await withApp(async (app) => {
    const status = hostStatus.parse(await (await app.request("/v1/status")).json());
    const v = status.volumes[0];
    assert.equal(v.trust, "trusted");
    assert.equal(v.trustReason, null);
    assert.match(v.generations!.primary, /^[0-9a-f-]{36}$/);
  });
});
