/**
 * The backup's checksums route in-process: digests of each region of the secondary, computed only
 * after everything journaled for the volume is applied (a held-back applier is waited for), and
 * the 400 / 404 answers for spans it will not hash; a region an open cycle staged a record in
 * matches nothing until the commit.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { type Backup, openBackup } from "../backup/service.ts";
import { stagedDigest } from "../backup/routes/checksums.ts";
import { BackupClient } from "../backup/client.ts";
import { Journal } from "../backup/journal.ts";
import { replayJournal } from "../backup/journal_replay.ts";
import { gate, settled } from "./support/gate.ts";
import { encodeCycleMarker, encodeRecord } from "../src/journal_record.ts";
import { checksumRegionsMax } from "../src/limits.ts";
import { decodeDigests, differingRuns, hashRegions } from "../src/region_checksums.ts";
import { randomBytes, seededRandom } from "../src/random.ts";

const region = 64 * 1024;
const volSize = 48 * region + 1000; // a short last region

async function withBackup(
  opts: { applierPaused?: boolean },
  fn: (b: Backup) => Promise<void>,
): Promise<void> {
  const dataDir = await Deno.makeTempDir({ prefix: "backup_checksums_" });
  const backup = await openBackup({ dataDir, log: () => {}, ...opts });
  try {
    const res = await backup.app.request("/v1/volumes/vol0", {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ sizeBytes: volSize }),
    });
    assert.equal(res.status, 201);
    await fn(backup);
  } finally {
    await backup.close();
    await Deno.remove(dataDir, { recursive: true });
  }
}

function checksums(b: Backup, body: unknown, name = "vol0"): Promise<Response> {
  return Promise.resolve(b.app.request(`/v1/volumes/${name}/checksums`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  }));
}

function sha256(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(bytes).digest());
}

Deno.test("checksums are the SHA-256 of each region, the short last region included", async () => {
  await withBackup({}, async (b) => {
    const data = randomBytes(seededRandom(1), 3000);
    b.store.writeSync("vol0", volSize - 3000, data);
    const res = await checksums(b, {
      offset: 46 * region,
      length: volSize - 46 * region,
      regionBytes: region,
    });
    assert.equal(res.status, 200);
    const body = await res.json();
    assert.equal(body.algorithm, "sha256");
    const digests = decodeDigests(body.digests);
    assert.equal(digests.length, 3 * 32);
    const image = b.store.readSync("vol0", 46 * region, volSize - 46 * region);
    assert.deepEqual(digests.subarray(0, 32), sha256(image.subarray(0, region)));
    assert.deepEqual(digests.subarray(64, 96), sha256(image.subarray(2 * region)));
    assert.equal(image.length - 2 * region, 1000, "the last region is 1000 bytes");
    assert.deepEqual(digests, await hashRegions(image, region));
  });
});

Deno.test("checksums wait for journaled records the applier has not applied yet", async () => {
  await withBackup({ applierPaused: true }, async (b) => {
    const data = new Uint8Array(region).fill(7);
    const body = encodeRecord({
      kind: "write",
      volume: "vol0",
      offset: 3 * region,
      length: region,
      data,
    });
    const res = await b.app.request("/v1/volumes/vol0/writes", {
      method: "POST",
      headers: { "content-type": "application/octet-stream" },
      body: body as BodyInit,
    });
    assert.equal(res.status, 200);
    assert.equal(b.store.readSync("vol0", 3 * region, 1)[0], 0, "not applied yet");
    let answered = false;
    const pending = checksums(b, { offset: 0, length: 4 * region, regionBytes: region }).then(
      (r) => {
        answered = true;
        return r;
      },
    );
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(answered, false, "no digests while a journaled record is unapplied");
    b.applier.resume();
    const digests = decodeDigests((await (await pending).json()).digests);
    assert.deepEqual(digests.subarray(3 * 32), sha256(data));
    const zeros = await hashRegions(new Uint8Array(4 * region), region);
    assert.deepEqual(differingRuns(digests, zeros), [{ first: 3, count: 1 }]);
  });
});

Deno.test("a region where an open cycle staged a record gets a digest that matches nothing, until the commit", async () => {
  await withBackup({}, async (b) => {
    const post = async (body: Uint8Array) => {
      const res = await b.app.request("/v1/volumes/vol0/writes", {
        method: "POST",
        headers: { "content-type": "application/octet-stream" },
        body: body as BodyInit,
      });
      assert.equal(res.status, 200);
    };
    // Staged, so the secondary's file still holds zeros there: as a primary that refused the
    // write does. Its digest must not say "equal to zeros", or the region is never shipped.
    const data = randomBytes(seededRandom(3), 5000);
    await post(encodeCycleMarker("cycle-begin", "vol0"));
    await post(
      encodeRecord({ kind: "write", volume: "vol0", offset: 2 * region + 7, length: 5000, data }),
    );
    const span = { offset: 0, length: 4 * region, regionBytes: region };
    const staged = decodeDigests((await (await checksums(b, span)).json()).digests);
    assert.equal(b.store.readSync("vol0", 2 * region + 7, 1)[0], 0, "staged, not applied");
    const zeros = await hashRegions(new Uint8Array(4 * region), region);
    assert.deepEqual(differingRuns(staged, zeros), [{ first: 2, count: 1 }]);
    assert.deepEqual(staged.subarray(2 * 32, 3 * 32), stagedDigest);

    await post(encodeCycleMarker("cycle-commit", "vol0"));
    const committed = decodeDigests((await (await checksums(b, span)).json()).digests);
    const image = new Uint8Array(4 * region);
    image.set(data, 2 * region + 7);
    assert.deepEqual(committed, await hashRegions(image, region), "the file's digests again");
  });
});

Deno.test("checksums refuse spans they will not hash, naming the value", async (t) => {
  await withBackup({}, async (b) => {
    const cases: [string, unknown, number, RegExp][] = [
      ["unaligned offset", { offset: 100, length: region, regionBytes: region }, 400, /Offset 100/],
      [
        "beyond the end",
        { offset: 48 * region, length: 2 * region, regionBytes: region },
        400,
        /exceeds/,
      ],
      ["ragged end", { offset: 0, length: region + 5, regionBytes: region }, 400, /must end/],
      ["region not a power of two", { offset: 0, length: 3000, regionBytes: 3000 }, 400, /3000/],
      ["zero length", { offset: 0, length: 0, regionBytes: region }, 400, /length/],
      [
        "too many regions",
        {
          offset: 0,
          length: (checksumRegionsMax + 1) * 512,
          regionBytes: 512,
        },
        400,
        /checksumRegionsMax/,
      ],
      ["missing field", { offset: 0, length: region }, 400, /regionBytes/],
    ];
    for (const [name, body, status, message] of cases) {
      await t.step(name, async () => {
        const res = await checksums(b, body);
        assert.equal(res.status, status);
        const err = await res.json();
        assert.match(err.error.message, message);
      });
    }
    await t.step("unknown volume", async () => {
      const res = await checksums(b, { offset: 0, length: region, regionBytes: region }, "nope");
      assert.equal(res.status, 404);
      await res.body?.cancel();
    });
  });
});

Deno.test("the backup client decodes the digests of a real request", async () => {
  await withBackup({}, async (b) => {
    const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, b.app.fetch);
    try {
      const client = new BackupClient(`http://127.0.0.1:${server.addr.port}`);
      const digests = await client.checksums("vol0", {
        offset: 0,
        length: 2 * region,
        regionBytes: region,
      });
      assert.deepEqual(digests, await hashRegions(new Uint8Array(2 * region), region));
    } finally {
      await server.shutdown();
    }
  });
});

Deno.test("the journal is drained only once a batch still in its group commit is durable", async () => {
  const dir = await Deno.makeTempDir({ prefix: "backup_drained_" });
  const held = gate();
  const journal = await Journal.open({
    dir,
    journalBytesMax: 1024 * 1024,
    syncData: async (file) => {
      await held.opened;
      await file.syncData();
    },
  }, await replayJournal(dir, () => {}, () => {}));
  try {
    const data = new Uint8Array(100).fill(1);
    // As the link does in `received` mode: appended (the host is told "received"), not durable.
    const durable = journal.append(
      encodeRecord({ kind: "write", volume: "vol0", offset: 0, length: data.length, data }),
      1,
    );
    let drained = false;
    const waiting = journal.drained().then(() => (drained = true));
    await settled();
    assert.equal(drained, false, "a batch in its group commit is not drained");
    held.open();
    await durable;
    await waiting;
    assert.equal(journal.recordsAcknowledged, 1, "checksums then wait for this record's apply");
  } finally {
    await journal.close();
    await Deno.remove(dir, { recursive: true });
  }
});
