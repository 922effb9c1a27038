/**
 * The backup's epoch fence under a second owner and under forged values: (lease epoch, link
 * epoch) ordered lexicographically, an older lease epoch refused as fenced on every path
 * (registration, HTTP batch, HELLO, RECORDS of an open connection), and out-of-bounds epochs
 * refused with 400 before anything changes — the issue's `epoch: 9007199254740991` included.
 */
import assert from "node:assert/strict";
import { type Backup, openBackup } from "../backup/service.ts";
import { LinkServer } from "../backup/link_server.ts";
import { encodeBatch } from "../backup/client.ts";
import { LinkClient } from "../host/link/link_client.ts";
import { ManualClock } from "../src/clock.ts";
import { epochAheadMsMax, leaseEpochStepMax } from "../src/limits.ts";

const volSize = 1024 * 1024;
const block = 4096;
/** The backup's clock; host link epochs are clock readings like it. */
const now = 1_800_000_000_000;

interface Fixture {
  backup: Backup;
  server: LinkServer;
  address: string;
  [Symbol.asyncDispose](): Promise<void>;
}

async function start(): Promise<Fixture> {
  const dir = await Deno.makeTempDir({ prefix: "epoch_fence_test_" });
  const backup = await openBackup({ dataDir: dir, log: () => {}, clock: new ManualClock(now) });
  const server = LinkServer.listen(
    { journal: backup.journal, store: backup.store, fence: backup.fence },
    { hostname: "127.0.0.1", port: 0 },
  );
  return {
    backup,
    server,
    address: `tcp://127.0.0.1:${server.port}`,
    async [Symbol.asyncDispose]() {
      await server.close();
      await backup.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

async function register(b: Backup, body: Record<string, unknown>, name = "vol0") {
  const res = await b.app.request(`/v1/volumes/${name}`, {
    method: "PUT",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ sizeBytes: volSize, ...body }),
  });
  return { status: res.status, json: await res.json() };
}

/** A registration that must succeed (201 creates the secondary, 200 re-registers). */
async function registered(b: Backup, body: Record<string, unknown>): Promise<void> {
  const res = await register(b, body);
  assert.ok(res.status === 200 || res.status === 201, JSON.stringify(res.json));
}

async function send(b: Backup, headers: Record<string, string>, fill = 1) {
  const data = new Uint8Array(block).fill(fill);
  const res = await b.app.request("/v1/volumes/vol0/writes", {
    method: "POST",
    headers: { "content-type": "application/octet-stream", ...headers },
    body: encodeBatch([{
      kind: "write",
      volume: "vol0",
      offset: 0,
      length: block,
      data,
    }]) as Uint8Array<
      ArrayBuffer
    >,
  });
  return { status: res.status, json: await res.json() };
}

Deno.test("the issue's forged epoch 9007199254740991 gets 400 naming the bound, changes nothing, and the real host keeps mirroring", async () => {
  await using f = await start();
  const b = f.backup;
  await registered(b, { epoch: now - 5, leaseEpoch: 1 });
  const forged = await register(b, { epoch: 9007199254740991 });
  assert.equal(forged.status, 400);
  assert.equal(
    forged.json.error.message,
    `Volume "vol0" epoch 9007199254740991 is more than epochAheadMsMax ${epochAheadMsMax} ms ` +
      `ahead of the backup's clock ${now}`,
  );
  assert.equal(b.fence.epochOf("vol0"), now - 5);
  const real = await send(b, {
    "x-trackmirror-epoch": String(now - 5),
    "x-trackmirror-lease-epoch": "1",
  });
  assert.equal(real.status, 200, JSON.stringify(real.json));
  // A new volume registered with a forged epoch is not created either.
  assert.equal((await register(b, { epoch: now + epochAheadMsMax + 1 }, "vol9")).status, 400);
  assert.deepEqual(b.store.list().map((v) => v.name), ["vol0"]);
  // The bound itself is allowed: a host clock up to a day ahead.
  await registered(b, { epoch: now + epochAheadMsMax, leaseEpoch: 1 });
});

Deno.test("a lease epoch more than leaseEpochStepMax above the backup's is refused with 400, changing nothing", async () => {
  await using f = await start();
  const b = f.backup;
  await registered(b, { epoch: now, leaseEpoch: 3 });
  for (const leaseEpoch of [3 + leaseEpochStepMax + 1, 9007199254740991]) {
    const res = await register(b, { epoch: now, leaseEpoch });
    assert.equal(res.status, 400);
    assert.equal(
      res.json.error.message,
      `Volume "vol0" leaseEpoch ${leaseEpoch} is more than leaseEpochStepMax ` +
        `${leaseEpochStepMax} above the backup's 3`,
    );
  }
  assert.equal(b.fence.leaseEpochOf("vol0"), 3);
  await registered(b, { epoch: now, leaseEpoch: 3 + leaseEpochStepMax });
});

Deno.test("a newer lease epoch fences the old owner's batches and registrations whatever its link epoch", async () => {
  await using f = await start();
  const b = f.backup;
  const oldOwner = { "x-trackmirror-epoch": String(now), "x-trackmirror-lease-epoch": "1" };
  await registered(b, { epoch: now, leaseEpoch: 1 });
  assert.equal((await send(b, oldOwner)).status, 200);
  // The new owner's clock is behind the old one's: the lease epoch decides, not the link epoch.
  const taken = await register(b, { epoch: now - 60_000, leaseEpoch: 2 });
  assert.equal(taken.status, 200);
  assert.deepEqual([taken.json.epoch, taken.json.leaseEpoch], [now - 60_000, 2]);
  const recordsBefore = b.journal.recordsAcknowledged;

  const stale = await send(b, oldOwner, 2);
  assert.equal(stale.status, 409);
  assert.match(
    stale.json.error.message,
    /^Volume "vol0" is fenced: a batch of lease epoch 1 is older than 2/,
  );
  const reRegister = await register(b, { epoch: now + 1, leaseEpoch: 1 });
  assert.equal(reRegister.status, 409);
  assert.match(
    reRegister.json.error.message,
    /^Volume "vol0" is fenced: lease epoch 1 is older than 2/,
  );
  const noLease = await send(b, { "x-trackmirror-epoch": String(now + 10) }, 3);
  assert.equal(noLease.status, 409, "a batch without a lease epoch counts as lease epoch 0");
  assert.equal(b.journal.recordsAcknowledged, recordsBefore, "a fenced batch was journaled");

  const fresh = { "x-trackmirror-epoch": String(now - 60_000), "x-trackmirror-lease-epoch": "2" };
  assert.equal((await send(b, fresh, 4)).status, 200);
  // Within one lease epoch the link epoch still orders one agent's connections.
  const olderLink = await send(b, { ...fresh, "x-trackmirror-epoch": String(now - 60_001) });
  assert.equal(olderLink.status, 409);
  assert.doesNotMatch(olderLink.json.error.message, /fenced/);
});

Deno.test("on the link, a newer lease epoch's HELLO fences the old owner's open connection, and the old one cannot say HELLO again", async () => {
  await using f = await start();
  const volume = (leaseEpoch: number, epoch: number) => [{
    name: "vol0",
    sizeBytes: volSize,
    epoch,
    leaseEpoch,
  }];
  const old = new LinkClient({ address: f.address, hostId: "h0", volumes: volume(1, now) });
  await old.open();
  const data = new Uint8Array(block).fill(7);
  await old.submit("vol0", { kind: "write", offset: 0, length: block, data });
  const before = f.backup.journal.recordsAcknowledged;

  const next = new LinkClient({ address: f.address, hostId: "h0", volumes: volume(2, now - 1) });
  await next.open();
  await assert.rejects(
    old.submit("vol0", { kind: "write", offset: block, length: block, data }),
    /Volume "vol0" is fenced: a batch of lease epoch 1 is older than 2/,
  );
  assert.equal(f.backup.journal.recordsAcknowledged, before, "the fenced frame was journaled");
  await next.submit("vol0", { kind: "write", offset: block, length: block, data });

  const again = new LinkClient({ address: f.address, hostId: "h0", volumes: volume(1, now + 5) });
  await assert.rejects(again.open(), /refused the link \(409\): Volume "vol0" is fenced/);
  const forged = new LinkClient({
    address: f.address,
    hostId: "h0",
    volumes: volume(2, 9007199254740991),
  });
  await assert.rejects(forged.open(), /\(400\): Volume "vol0" epoch 9007199254740991 is more than/);
  assert.equal(f.backup.fence.epochOf("vol0"), now - 1);
  await next.submit("vol0", { kind: "write", offset: 0, length: block, data });
  await Promise.all([old.close(), next.close(), again.close(), forged.close()]);
});
