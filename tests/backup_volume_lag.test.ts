/**
 * The backup's per-volume lag (issue 11, backup/volume_lag.ts): what each volume has journaled and
 * not yet applied and synced to its secondary, in bytes, records and seconds, as `GET /v1/status`
 * shows it in `lag` — counted through the journal's own append and release.
 */
import assert from "node:assert/strict";
import { encodeBatch } from "../backup/client.ts";
import { type Backup, openBackup } from "../backup/service.ts";
import { VolumeLag } from "../backup/volume_lag.ts";
import { encodedRecordBytes } from "../src/journal_record.ts";
import type { BackupStatus } from "../src/schemas.ts";

const volSize = 1024 * 1024;

async function withBackup(fn: (b: Backup) => Promise<void>): Promise<void> {
  const dataDir = await Deno.makeTempDir({ prefix: "backup_lag_" });
  const backup = await openBackup({ dataDir, log: () => {}, applierPaused: true });
  try {
    await fn(backup);
  } finally {
    await backup.close();
    await Deno.remove(dataDir, { recursive: true });
  }
}

async function request(b: Backup, path: string, init?: RequestInit): Promise<Response> {
  const res = await b.app.request(path, init);
  assert.ok(res.ok, `${path} answered ${res.status}: ${await res.clone().text()}`);
  return res;
}

function lagOf(s: BackupStatus, volume: string) {
  const lag = s.lag?.find((l) => l.volume === volume);
  assert.ok(lag, `no lag entry for ${volume}`);
  return lag;
}

Deno.test("status shows each volume's journaled but unapplied records, and zero once applied", async () => {
  await withBackup(async (b) => {
    for (const name of ["vol0", "vol1"]) {
      await request(b, `/v1/volumes/${name}`, {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ sizeBytes: volSize }),
      });
    }
    const data = new Uint8Array(4096).fill(1);
    const post = (name: string, body: Uint8Array) =>
      request(b, `/v1/volumes/${name}/writes`, {
        method: "POST",
        headers: { "content-type": "application/octet-stream" },
        body: body as BodyInit,
      });
    const before = Date.now();
    await post(
      "vol0",
      encodeBatch([
        { kind: "write", volume: "vol0", offset: 0, length: 4096, data },
        { kind: "write", volume: "vol0", offset: 8192, length: 4096, data },
        { kind: "zero", volume: "vol0", offset: 65536, length: 65536 },
      ]),
    );
    await post(
      "vol1",
      encodeBatch([{ kind: "write", volume: "vol1", offset: 0, length: 4096, data }]),
    );

    const held = await (await request(b, "/v1/status")).json() as BackupStatus;
    const vol0 = lagOf(held, "vol0");
    assert.equal(vol0.records, 3);
    assert.equal(
      vol0.bytes,
      2 * encodedRecordBytes("vol0", "write", 4096) + encodedRecordBytes("vol0", "zero", 65536),
    );
    assert.ok(vol0.oldestAt !== null && vol0.oldestAt >= before);
    assert.equal(vol0.oldestAtIso, new Date(vol0.oldestAt).toISOString());
    assert.ok(vol0.seconds >= 0);
    assert.equal(lagOf(held, "vol1").records, 1);
    assert.equal(lagOf(held, "vol1").bytes, encodedRecordBytes("vol1", "write", 4096));
    assert.equal(held.journalBytesPending, vol0.bytes + lagOf(held, "vol1").bytes);

    b.applier.resume();
    await request(b, "/v1/flush", { method: "POST" });
    const applied = await (await request(b, "/v1/status")).json() as BackupStatus;
    for (const name of ["vol0", "vol1"]) {
      assert.deepEqual(lagOf(applied, name), {
        volume: name,
        bytes: 0,
        records: 0,
        oldestAt: null,
        oldestAtIso: null,
        seconds: 0,
      });
    }
    assert.equal(typeof applied.startedAtIso, "string");
  });
});

Deno.test("the oldest waiting record sets the age; a refused batch is taken back", () => {
  let now = 1000;
  const lag = new VolumeLag(() => now);
  const batch = (n: number) =>
    encodeBatch(
      Array.from({ length: n }, (_, i) => ({
        kind: "zero" as const,
        volume: "vol0",
        offset: i * 4096,
        length: 4096,
      })),
    );
  const first = batch(2);
  lag.admitted(first);
  now = 2000;
  const refused = lag.admitted(batch(5));
  now = 3000;
  const third = batch(1);
  lag.admitted(third);
  now = 4000;
  assert.equal(lag.view("vol0").records, 8);
  assert.equal(lag.view("vol0").seconds, 3);
  lag.refused(refused);
  assert.equal(lag.view("vol0").records, 3);
  lag.released(first);
  assert.equal(lag.view("vol0").oldestAt, 3000, "the refused batch no longer counts as oldest");
  assert.equal(lag.view("vol0").seconds, 1);
  lag.released(third);
  assert.deepEqual(lag.view("vol0"), {
    volume: "vol0",
    bytes: 0,
    records: 0,
    oldestAt: null,
    oldestAtIso: null,
    seconds: 0,
  });
  assert.equal(lag.view("other").records, 0);
});

Deno.test("records of several volumes in one batch are counted to each", () => {
  const lag = new VolumeLag(() => 0);
  const data = new Uint8Array(512);
  const body = encodeBatch([
    { kind: "write", volume: "vol0", offset: 0, length: 512, data },
    { kind: "write", volume: "vol1", offset: 0, length: 512, data },
    { kind: "zero", volume: "vol1", offset: 512, length: 512 },
    { kind: "write", volume: "vol0", offset: 512, length: 512, data },
    { kind: "write", volume: "db", offset: 0, length: 512, data },
  ]);
  lag.admitted(body);
  assert.equal(lag.view("vol0").records, 2);
  assert.equal(lag.view("vol0").bytes, 2 * encodedRecordBytes("vol0", "write", 512));
  assert.equal(lag.view("vol1").records, 2);
  assert.equal(
    lag.view("vol1").bytes,
    encodedRecordBytes("vol1", "write", 512) + encodedRecordBytes("vol1", "zero", 512),
  );
  assert.equal(lag.view("db").records, 1);
  lag.released(body);
  for (const v of ["vol0", "vol1", "db"]) assert.equal(lag.view(v).records, 0);
});
