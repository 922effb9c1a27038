/**
 * The backup says when it cannot take writes: the test-only fault file, a journal write that fails
 * with ENOSPC / EIO (refused, never acknowledged, healed by the disk), a full journal, and the
 * link refusing a HELLO with ERROR 503 naming the reason instead of the server dying.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { journalSelfTestMs } from "../backup/journal.ts";
import { type Backup, openBackup } from "../backup/service.ts";
import { LinkServer } from "../backup/link_server.ts";
import { LinkClient, LinkRefusedError } from "../host/link/link_client.ts";
import { diskErrorCode, FaultFile, faultRecheckMs, parseFaults } from "../src/fault_file.ts";
import { encodeRecord } from "../src/journal_record.ts";
import type { BackupStatus } from "../src/schemas.ts";

const volSize = 1024 * 1024;

interface Rig {
  backup: Backup;
  dir: string;
  faultPath: string;
  [Symbol.asyncDispose](): Promise<void>;
}

async function rig(opts: { journalBytesMax?: number; applierPaused?: boolean } = {}): Promise<Rig> {
  const dir = await Deno.makeTempDir({ prefix: "backup_degraded_" });
  const faultPath = join(dir, "faults");
  const backup = await openBackup({
    dataDir: join(dir, "data"),
    log: () => {},
    faults: new FaultFile(faultPath),
    ...opts,
  });
  const res = await backup.app.request("/v1/volumes/db0", {
    method: "PUT",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ sizeBytes: volSize }),
  });
  assert.ok(res.ok, `registration answered ${res.status}`);
  await res.body?.cancel();
  return {
    backup,
    dir,
    faultPath,
    async [Symbol.asyncDispose]() {
      await backup.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

function post(b: Backup, offset: number, fill: number): Promise<Response> {
  const data = new Uint8Array(4096).fill(fill);
  const body = encodeRecord({ kind: "write", volume: "db0", offset, length: data.length, data });
  return Promise.resolve(b.app.request("/v1/volumes/db0/writes", {
    method: "POST",
    headers: { "content-type": "application/octet-stream" },
    body: body as BodyInit,
  }));
}

async function status(b: Backup): Promise<BackupStatus> {
  return await (await b.app.request("/v1/status")).json();
}

/** Polls `ok` until it holds (the applier retries a failed step once a second). */
async function eventually(ok: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Waits out the fault file's re-read bound, so a change to it is seen. */
const recheck = () => new Promise((r) => setTimeout(r, faultRecheckMs + 5));

Deno.test("the fault file switches faults on by line and off when the line goes", async () => {
  assert.deepEqual(
    [...parseFaults("# test\njournal=enospc\n primary=EIO \nbogus=eio\nsecondary=full\n")],
    [["journal", "enospc"], ["primary", "eio"]],
  );
  const dir = await Deno.makeTempDir();
  try {
    let now = 0;
    const path = join(dir, "faults");
    const faults = new FaultFile(path, () => now);
    faults.check("journal", "absent file"); // no file: no fault
    await Deno.writeTextFile(path, "journal=eio\n");
    now += faultRecheckMs;
    const err = (() => {
      try {
        faults.check("journal", "Segment 1");
      } catch (e) {
        return e;
      }
    })();
    assert.equal(diskErrorCode(err), "EIO");
    assert.match((err as Error).message, /^Segment 1: Input\/output error/);
    faults.check("primary", "other targets are untouched");
    await Deno.writeTextFile(path, "");
    assert.throws(() => faults.check("journal", "x"), "a change is seen only after the bound");
    now += faultRecheckMs;
    faults.check("journal", "healed");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a journal write failing with ENOSPC is refused, never acknowledged, and heals with the disk", async () => {
  await using r = await rig();
  const b = r.backup;
  assert.equal((await post(b, 0, 1)).status, 200);
  assert.deepEqual(
    [(await status(b)).state, (await status(b)).reason],
    ["ok", null],
  );

  await Deno.writeTextFile(r.faultPath, "journal=enospc\n");
  await recheck();
  const refused = await post(b, 4096, 2);
  assert.equal(refused.status, 503);
  assert.match((await refused.json()).error.message, /No space left on device/);
  const s = await status(b);
  assert.equal(s.state, "degraded");
  assert.match(s.reason!, /^Journal write failed: .*No space left on device/);
  assert.equal(s.recordsAcknowledged, 1, "the refused batch was not acknowledged");
  const metrics = await (await b.app.request("/metrics")).text();
  assert.match(metrics, /^trackmirror_backup_degraded 1$/m);

  await Deno.writeTextFile(r.faultPath, "");
  await new Promise((r) => setTimeout(r, Math.max(faultRecheckMs, journalSelfTestMs) + 5));
  const healed = await status(b);
  assert.deepEqual([healed.state, healed.reason], ["ok", null], "the self-test saw the disk heal");
  assert.equal((await post(b, 4096, 3)).status, 200);
  assert.equal((await status(b)).recordsAcknowledged, 2);
});

Deno.test("a degraded journal refuses a link HELLO with ERROR 503 naming the reason", async () => {
  await using r = await rig({ journalBytesMax: 16 * 1024, applierPaused: true });
  const b = r.backup;
  const server = LinkServer.listen({ journal: b.journal, store: b.store, metrics: b.metrics }, {
    hostname: "127.0.0.1",
    port: 0,
  });
  try {
    const open = () =>
      new LinkClient({
        address: `tcp://127.0.0.1:${server.port}`,
        hostId: "h1",
        volumes: [{ name: "db0", sizeBytes: volSize, epoch: 1 }],
      });
    for (let i = 0; i < 4; i++) await (await post(b, i * 4096, i)).body?.cancel();
    const s = await status(b);
    assert.equal(s.state, "degraded");
    assert.match(s.reason!, /^Journal full: \d+ bytes pending of journalBytesMax 16384/);

    const err = await open().open().then(() => assert.fail("HELLO was welcomed"), (e) => e);
    assert.ok(err instanceof LinkRefusedError);
    assert.equal(err.status, 503);
    assert.match(err.message, /cannot take writes: Journal full/);
    const metrics = await (await b.app.request("/metrics")).text();
    assert.match(metrics, /^trackmirror_backup_link_refused_total 1$/m);

    b.applier.resume();
    assert.equal((await b.app.request("/v1/flush", { method: "POST" })).status, 200);
    assert.equal((await status(b)).state, "ok");
    const link = open();
    await link.open();
    await link.submit("db0", { kind: "write", offset: 0, length: 4, data: new Uint8Array(4) });
    await link.close();
  } finally {
    await server.close();
  }
});

Deno.test("a secondary fault stops the applier; the journal fills and reports itself full", async () => {
  await using r = await rig({ journalBytesMax: 16 * 1024 });
  const b = r.backup;
  await Deno.writeTextFile(r.faultPath, "secondary=eio\n");
  await recheck();
  let accepted = 0;
  for (let i = 0; i < 10; i++) {
    const res = await post(b, i * 4096, i);
    await res.body?.cancel();
    if (res.status === 200) accepted++;
  }
  assert.ok(accepted < 10, "the journal never filled");
  const s = await status(b);
  assert.equal(s.state, "degraded");
  assert.match(s.reason!, /^Journal full/);
  assert.match(s.applierError!, /Applying to the secondaries: Input\/output error/);
  await Deno.writeTextFile(r.faultPath, "");
  await eventually(async () => (await status(b)).applierError === null, "the applier to recover");
  assert.equal((await b.app.request("/v1/flush", { method: "POST" })).status, 200);
  const healed = await status(b);
  assert.deepEqual([healed.state, healed.applierError, healed.recordsApplied], [
    "ok",
    null,
    accepted,
  ]);
});
