/**
 * The backup service in-process with a resync cycle (issue 10): markers arrive in a write batch
 * like any record; between them the secondary does not change and status shows the open cycle;
 * the commit applies the stage and `GET /v1/volumes/{name}/points` lists the point. A backup
 * closed with the cycle open and reopened keeps the stage, and keeps the secondary as it was.
 */
import assert from "node:assert/strict";
import { openBackup } from "../backup/service.ts";
import { encodeCycleMarker, encodeRecord } from "../src/journal_record.ts";
import type { BackupStatus } from "../src/schemas.ts";
import { concatBytes } from "../src/bytes.ts";

const vol = "vol0";
const sizeBytes = 1024 * 1024;

function concat(...parts: Uint8Array[]): Uint8Array {
  return concatBytes(parts);
}

function write(offset: number, value: number): Uint8Array {
  const data = new Uint8Array(4096).fill(value);
  return encodeRecord({ kind: "write", volume: vol, offset, length: data.length, data });
}

Deno.test("a cycle's writes reach the secondary at its commit, which the points route lists", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "backup_points_" });
  const open = () => openBackup({ dataDir, log: () => {} });
  let backup = await open();
  const req = (path: string, init?: RequestInit) => Promise.resolve(backup.app.request(path, init));
  const post = (body: Uint8Array) =>
    req(`/v1/volumes/${vol}/writes`, {
      method: "POST",
      headers: { "content-type": "application/octet-stream" },
      body: body as BodyInit,
    });
  const flush = async () => (await req("/v1/flush", { method: "POST" })).body?.cancel();
  const first = () => backup.store.readSync(vol, 0, 1)[0];
  try {
    const put = await req(`/v1/volumes/${vol}`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ sizeBytes }),
    });
    assert.equal(put.status, 201);
    assert.equal(
      (await post(concat(write(0, 1), encodeCycleMarker("cycle-begin", vol)))).status,
      200,
    );
    assert.equal((await post(write(0, 2))).status, 200);
    await flush();
    assert.equal(first(), 1, "the staged write is not in the secondary");
    const status: BackupStatus = await (await req("/v1/status")).json();
    assert.equal(status.openCycles?.[0]?.volume, vol);
    assert.equal(status.openCycles?.[0]?.stagedRecords, 1);

    await backup.close();
    backup = await open();
    assert.equal(first(), 1, "a restart keeps the previous point in time");
    assert.equal(backup.stages.openCycles().length, 1, "and the open stage");

    assert.equal((await post(encodeCycleMarker("cycle-commit", vol))).status, 200);
    await flush();
    assert.equal(first(), 2);
    const points = await (await req(`/v1/volumes/${vol}/points`)).json();
    assert.equal(points.points.length, 1);
    assert.equal(points.points[0].records, 1);
    assert.equal(points.openCycle, null);
    assert.equal((await req(`/v1/volumes/nope/points`)).status, 404);
  } finally {
    await backup.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});
