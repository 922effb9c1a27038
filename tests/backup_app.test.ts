/**
 * The backup service in-process through `app.request()`: registration, batch verification before
 * anything is journaled, the 404 / 400 / 413 / 503 answers, flush, group commit, and the typed
 * client over a real socket.
 */
import assert from "node:assert/strict";
import { randomBytes, seededRandom } from "../src/random.ts";
import { sha256 } from "../harness/tools.ts";
import { join } from "node:path";
import { type Backup, openBackup } from "../backup/service.ts";
import { BackupClient, encodeBatch } from "../backup/client.ts";
import { ServiceCallError } from "../src/http_client.ts";
import { encodeRecord } from "../src/journal_record.ts";
import type { BackupStatus } from "../src/schemas.ts";
import { concatBytes } from "../src/bytes.ts";

const volSize = 1024 * 1024;

async function withBackup(
  opts: Partial<Parameters<typeof openBackup>[0]>,
  fn: (b: Backup, dataDir: string) => Promise<void>,
): Promise<void> {
  const dataDir = await Deno.makeTempDir({ prefix: "backup_app_" });
  const backup = await openBackup({ dataDir, log: () => {}, ...opts });
  try {
    await fn(backup, dataDir);
  } finally {
    await backup.close();
    await Deno.remove(dataDir, { recursive: true });
  }
}

function register(b: Backup, name: string, sizeBytes = volSize): Promise<Response> {
  return Promise.resolve(b.app.request(`/v1/volumes/${name}`, {
    method: "PUT",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ sizeBytes }),
  }));
}

function post(b: Backup, name: string, body: Uint8Array | ReadableStream<Uint8Array>) {
  return Promise.resolve(b.app.request(`/v1/volumes/${name}/writes`, {
    method: "POST",
    headers: { "content-type": "application/octet-stream" },
    body: body as BodyInit,
  }));
}

async function status(b: Backup): Promise<BackupStatus> {
  return await (await b.app.request("/v1/status")).json();
}

/** A counter or gauge value from `GET /metrics`; 0 when not yet present. */
async function metric(b: Backup, name: string): Promise<number> {
  const text = await (await b.app.request("/metrics")).text();
  const m = new RegExp(`^${name} (\\d+)$`, "m").exec(text);
  return m ? Number(m[1]) : 0;
}

/** Total bytes written to the journal's segments: up to each one's preallocated zero tail. */
async function journalFileBytes(dataDir: string): Promise<number> {
  let total = 0;
  for await (const e of Deno.readDir(join(dataDir, "journal"))) {
    if (!e.name.endsWith(".log")) continue;
    const bytes = await Deno.readFile(join(dataDir, "journal", e.name));
    let end = bytes.length;
    while (end > 0 && bytes[end - 1] === 0) end--;
    total += end;
  }
  return total;
}

/** Deterministic bytes for a test write. */
function pattern(length: number, seed: number): Uint8Array {
  return randomBytes(seededRandom(seed), length);
}

function writeRecord(volume: string, offset: number, data: Uint8Array): Uint8Array {
  return encodeRecord({ kind: "write", volume, offset, length: data.length, data });
}

Deno.test("backup registers volumes, refuses another size and bad names", async () => {
  await withBackup({}, async (b, dataDir) => {
    assert.equal((await register(b, "db0")).status, 201);
    assert.equal((await register(b, "db0")).status, 200);
    const res = await register(b, "db0", volSize * 2);
    assert.equal(res.status, 409);
    assert.match((await res.json()).error.message, /db0.*1048576.*2097152/);
    assert.equal((await register(b, "Bad_Name")).status, 400);
    assert.equal((await register(b, "db1", -5)).status, 400);
    assert.equal((await Deno.stat(join(dataDir, "volumes", "db0.img"))).size, volSize);
    const list = await (await b.app.request("/v1/volumes")).json();
    assert.deepEqual(list, { volumes: [{ name: "db0", sizeBytes: volSize }] });
  });
});

Deno.test("backup answers 404 for a batch to an unknown volume", async () => {
  await withBackup({}, async (b) => {
    const res = await post(b, "nope", writeRecord("nope", 0, pattern(512, 1)));
    assert.equal(res.status, 404);
    assert.match((await res.json()).error.message, /"nope"/);
    assert.equal((await status(b)).recordsAcknowledged, 0);
  });
});

Deno.test("backup refuses a bad batch whole, appending nothing", async (t) => {
  await withBackup({ applierPaused: true }, async (b, dataDir) => {
    await register(b, "db0");
    await register(b, "other");
    const good = writeRecord("db0", 0, pattern(4096, 2));
    const badChecksum = writeRecord("db0", 4096, pattern(4096, 3));
    badChecksum[badChecksum.length - 1] ^= 0xff;
    const cases: [string, Uint8Array, RegExp][] = [
      ["bad checksum", badChecksum, /checksum mismatch/],
      ["good record then bad checksum", concat(good, badChecksum), /Record 1 .*checksum/],
      ["record naming another volume", writeRecord("other", 0, pattern(512, 4)), /"other"/],
      [
        "write past the end of the volume",
        writeRecord("db0", volSize - 100, pattern(512, 5)),
        /1048476\+512 exceeds volume "db0" size 1048576/,
      ],
      [
        "zero past the end",
        encodeRecord({ kind: "zero", volume: "db0", offset: volSize, length: 1 }),
        /exceeds/,
      ],
      ["truncated body", concat(good, good.subarray(0, good.length - 7)), /cut short/],
      ["empty body", new Uint8Array(0), /empty/],
      ["garbage", pattern(300, 6), /magic/],
    ];
    for (const [name, body, message] of cases) {
      await t.step(name, async () => {
        const res = await post(b, "db0", body);
        assert.equal(res.status, 400);
        assert.match((await res.json()).error.message, message);
        const s = await status(b);
        assert.equal(s.recordsAcknowledged, 0);
        assert.equal(s.journalBytesPending, 0);
        assert.equal(await journalFileBytes(dataDir), 0);
      });
    }
    // The same good record is accepted, so the refusals above were about the bad parts.
    const res = await post(b, "db0", good);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { records: 1, bytes: good.length });
    assert.equal(await journalFileBytes(dataDir), good.length);
  });
});

Deno.test("backup answers 413 for a body over batchBytesMax", async (t) => {
  await withBackup({ batchBytesMax: 8192 }, async (b, dataDir) => {
    await register(b, "db0");
    const big = writeRecord("db0", 0, pattern(9000, 7));
    await t.step("declared by Content-Length", async () => {
      const res = await b.app.request("/v1/volumes/db0/writes", {
        method: "POST",
        headers: { "content-length": String(big.length) },
        body: big as BodyInit,
      });
      assert.equal(res.status, 413);
      assert.match((await res.json()).error.message, /9\d{3} bytes exceeds batchBytesMax 8192/);
    });
    await t.step("streamed without a length", async () => {
      const chunks = [big.subarray(0, 4000), big.subarray(4000, 8000), big.subarray(8000)];
      const stream = ReadableStream.from(chunks);
      const res = await post(b, "db0", stream);
      assert.equal(res.status, 413);
    });
    assert.equal((await status(b)).recordsAcknowledged, 0);
    assert.equal(await journalFileBytes(dataDir), 0);
    const ok = await post(b, "db0", writeRecord("db0", 0, pattern(8000, 8)));
    assert.equal(ok.status, 200);
  });
});

Deno.test("backup answers 503 when the journal is full, and accepts again once applied", async () => {
  const journalBytesMax = 16 * 1024;
  await withBackup({ journalBytesMax, applierPaused: true }, async (b) => {
    await register(b, "db0");
    let accepted = 0;
    let res: Response;
    for (;;) {
      res = await post(b, "db0", writeRecord("db0", accepted * 4096, pattern(4096, accepted)));
      if (res.status !== 200) break;
      await res.body?.cancel();
      accepted++;
      assert.ok(accepted < 100, "The journal never refused");
    }
    assert.equal(res.status, 503);
    assert.match((await res.json()).error.message, /Journal full/);
    assert.equal(accepted, 3); // 3 * (4096 + 27) fit in 16 KiB; a 4th does not
    const s = await status(b);
    assert.ok(s.journalBytesPending <= journalBytesMax);
    assert.equal(s.recordsAcknowledged, 3);
    assert.equal(s.recordsApplied, 0);

    b.applier.resume();
    assert.equal((await b.app.request("/v1/flush", { method: "POST" })).status, 200);
    const after = await status(b);
    assert.equal(after.journalBytesPending, 0);
    assert.equal(after.recordsApplied, 3);
    assert.equal((await post(b, "db0", writeRecord("db0", 0, pattern(4096, 9)))).status, 200);
  });
});

Deno.test("backup flush leaves the secondary holding every acknowledged write", async () => {
  await withBackup({}, async (b, dataDir) => {
    await register(b, "db0");
    const expected = new Uint8Array(volSize);
    const batches: Uint8Array[] = [];
    for (let i = 0; i < 40; i++) {
      // Overlapping writes: the later one must win, so order of apply matters.
      const offset = (i * 37 * 1024) % (volSize - 64 * 1024);
      const data = pattern(16 * 1024 + i * 512, i + 100);
      expected.set(data, offset);
      const zeroAt = (offset + 4096) % (volSize - 8192);
      expected.fill(0, zeroAt, zeroAt + 3000);
      batches.push(encodeBatch([
        { kind: "write", volume: "db0", offset, length: data.length, data },
        { kind: "zero", volume: "db0", offset: zeroAt, length: 3000 },
      ]));
    }
    for (const body of batches) {
      const res = await post(b, "db0", body);
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), { records: 2, bytes: body.length });
    }
    const flush = await b.app.request("/v1/flush", { method: "POST" });
    assert.equal(flush.status, 200);
    const s = await status(b);
    assert.equal(s.recordsApplied, 80);
    assert.equal(s.recordsAcknowledged, 80);
    const secondary = await Deno.readFile(join(dataDir, "volumes", "db0.img"));
    assert.equal(await sha256(secondary), await sha256(expected));
  });
});

Deno.test("backup commits concurrent batches with far fewer fsyncs than batches", async () => {
  await withBackup({}, async (b) => {
    await register(b, "db0");
    const batches = 64;
    const answers = await Promise.all(
      Array.from(
        { length: batches },
        (_, i) => post(b, "db0", writeRecord("db0", i * 8192, pattern(8192, i))),
      ),
    );
    for (const res of answers) assert.equal(res.status, 200);
    const fsyncs = await metric(b, "trackmirror_backup_journal_fsyncs_total");
    const groups = await metric(b, "trackmirror_backup_journal_groups_total");
    assert.equal(await metric(b, "trackmirror_backup_batches_total"), batches);
    assert.equal((await status(b)).recordsAcknowledged, batches);
    assert.ok(fsyncs >= 1 && fsyncs <= batches / 8, `${fsyncs} fsyncs for ${batches} batches`);
    assert.ok(groups <= fsyncs);
  });
});

Deno.test("backup guards its routes with a bearer token when one is set", async () => {
  await withBackup({ token: "s3cret" }, async (b) => {
    assert.equal((await b.app.request("/healthz")).status, 200);
    assert.equal((await b.app.request("/v1/status")).status, 401);
    const res = await b.app.request("/v1/status", {
      headers: { authorization: "Bearer s3cret" },
    });
    assert.equal(res.status, 200);
  });
});

Deno.test("backup client speaks every route over a real socket", async () => {
  await withBackup({ journalBytesMax: 8192, applierPaused: true }, async (b) => {
    const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, b.app.fetch);
    try {
      const client = new BackupClient(`http://127.0.0.1:${server.addr.port}/`);
      assert.equal(await client.healthz(), true);
      await client.registerVolume("db0", volSize);
      await client.registerVolume("db0", volSize);
      await assert.rejects(
        client.registerVolume("db0", 4096),
        (e) => e instanceof ServiceCallError && e.status === 409 && !e.offline,
      );
      assert.deepEqual(await client.listVolumes(), [{ name: "db0", sizeBytes: volSize }]);
      const data = pattern(6000, 11);
      const body = encodeBatch([{ kind: "write", volume: "db0", offset: 0, length: 6000, data }]);
      assert.deepEqual(await client.writeBatch("db0", body), { records: 1, bytes: body.length });
      await assert.rejects(
        client.writeBatch("db0", body),
        (e) => e instanceof ServiceCallError && e.status === 503 && e.offline,
      );
      await assert.rejects(
        client.writeBatch("db1", body),
        (e) => e instanceof ServiceCallError && e.status === 404 && !e.offline,
      );
      b.applier.resume();
      await client.flush();
      const s = await client.status();
      assert.equal(s.recordsApplied, 1);
      assert.deepEqual(s.volumes, ["db0"]);
    } finally {
      await server.shutdown();
    }
    const gone = new BackupClient(`http://127.0.0.1:${server.addr.port}`, { timeoutMs: 2000 });
    assert.equal(await gone.healthz(), false);
    await assert.rejects(gone.status(), (e) => e instanceof ServiceCallError && e.offline);
  });
});

function concat(...parts: Uint8Array[]): Uint8Array {
  return concatBytes(parts);
}

Deno.test("a batch older than the volume's epoch fence is refused and never journaled", async () => {
  await withBackup({}, async (b) => {
    const fenced = (epoch: number) =>
      b.app.request("/v1/volumes/v1", {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ sizeBytes: volSize, epoch }),
      });
    const send = (epoch: string, fill: number) =>
      b.app.request("/v1/volumes/v1/writes", {
        method: "POST",
        headers: { "content-type": "application/octet-stream", "x-trackmirror-epoch": epoch },
        body: encodeRecord({
          kind: "write",
          volume: "v1",
          offset: 0,
          length: 4,
          data: new Uint8Array(4).fill(fill),
        }) as BodyInit,
      });
    assert.equal((await fenced(5)).status, 201);
    const stale = await send("4", 1);
    assert.equal(stale.status, 409);
    assert.match((await stale.json()).error.message, /epoch 4, older than 5/);
    assert.equal((await status(b)).recordsAcknowledged, 0, "the stale batch was not journaled");
    assert.equal((await send("5", 2)).status, 200);
    assert.equal((await fenced(3)).status, 200, "re-registering never lowers the fence");
    assert.equal((await send("4", 3)).status, 409);
    const bad = await send("x1", 4);
    assert.equal(bad.status, 400);
    assert.match((await bad.json()).error.message, /"x1"/);
    assert.equal((await status(b)).recordsAcknowledged, 1);
  });
});
