/**
 * The backup journal across restarts: replay, torn tails dropped, corruption refused, segments
 * reclaimed after apply, and no replay across a gap in the segment numbers.
 */
import assert from "node:assert/strict";
import { randomBytes, seededRandom } from "../src/random.ts";
import { join } from "node:path";
import { type Backup, type BackupOptions, openBackup } from "../backup/service.ts";
import { replayStart, zeroFrom } from "../backup/journal_replay.ts";
import { segmentPath } from "../backup/segment_files.ts";
import { encodeRecord } from "../src/journal_record.ts";

const volSize = 256 * 1024;

/** Deterministic bytes for a test write. */
function pattern(length: number, seed: number): Uint8Array {
  return randomBytes(seededRandom(seed), length);
}

function writeRecord(offset: number, data: Uint8Array, volume = "db0"): Uint8Array {
  return encodeRecord({ kind: "write", volume, offset, length: data.length, data });
}

/** Opens a backup on `dataDir`, collecting what it logs. */
async function open(
  dataDir: string,
  opts: Partial<BackupOptions> = {},
): Promise<{ b: Backup; logs: string[] }> {
  const logs: string[] = [];
  const b = await openBackup({ dataDir, log: (m) => logs.push(m), ...opts });
  return { b, logs };
}

async function register(b: Backup, name = "db0"): Promise<void> {
  const res = await b.app.request(`/v1/volumes/${name}`, {
    method: "PUT",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ sizeBytes: volSize }),
  });
  assert.ok(res.ok, `register ${name}: ${res.status}`);
}

async function post(b: Backup, body: Uint8Array, name = "db0"): Promise<void> {
  const res = await b.app.request(`/v1/volumes/${name}/writes`, {
    method: "POST",
    body: body as BodyInit,
  });
  assert.equal(res.status, 200, await res.text());
}

function secondary(dataDir: string, name = "db0"): Promise<Uint8Array> {
  return Deno.readFile(join(dataDir, "volumes", `${name}.img`));
}

async function segmentNames(dataDir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(join(dataDir, "journal"))) {
    if (e.name.endsWith(".log")) names.push(e.name);
  }
  return names.sort();
}

async function withDir(fn: (dataDir: string) => Promise<void>): Promise<void> {
  const dataDir = await Deno.makeTempDir({ prefix: "backup_journal_" });
  try {
    await fn(dataDir);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
}

Deno.test("journal replays acknowledged records in order after a reopen", async () => {
  await withDir(async (dataDir) => {
    const first = await open(dataDir, { applierPaused: true });
    await register(first.b);
    const a = pattern(8192, 1);
    const c = pattern(4096, 2);
    await post(first.b, writeRecord(1000, a));
    await post(first.b, writeRecord(3000, c)); // overlaps a: must land after it
    await first.b.close();
    assert.ok((await secondary(dataDir)).every((x) => x === 0), "Nothing applied while paused");

    const second = await open(dataDir, { applierPaused: true });
    try {
      const expected = new Uint8Array(volSize);
      expected.set(a, 1000);
      expected.set(c, 3000);
      // Applied by replay at open, with the applier still paused.
      assert.deepEqual(await secondary(dataDir), expected);
      assert.ok(second.logs.some((m) => /replayed 2 records/.test(m)), second.logs.join("\n"));
    } finally {
      await second.b.close();
    }
  });
});

Deno.test("journal drops a torn tail of the last segment and never applies it", async (t) => {
  const tails: [string, (torn: Uint8Array) => Uint8Array][] = [
    ["record cut mid-payload", (torn) => torn.subarray(0, torn.length - 100)],
    ["record cut mid-header", (torn) => torn.subarray(0, 10)],
    ["bad checksum", (torn) => {
      const copy = torn.slice();
      copy[copy.length - 1] ^= 1;
      return copy;
    }],
    ["garbage", () => pattern(777, 9)],
  ];
  for (const [name, tear] of tails) {
    await t.step(name, () =>
      withDir(async (dataDir) => {
        const first = await open(dataDir, { applierPaused: true });
        await register(first.b);
        const kept = pattern(4096, 3);
        await post(first.b, writeRecord(0, kept));
        await first.b.close();
        const [segment] = await segmentNames(dataDir);
        const path = join(dataDir, "journal", segment);
        const goodBytes = (await Deno.stat(path)).size;
        const torn = tear(writeRecord(65536, pattern(4096, 4)));
        await Deno.writeFile(path, torn, { append: true });

        const second = await open(dataDir);
        try {
          const img = await secondary(dataDir);
          assert.deepEqual(img.subarray(0, 4096), kept);
          assert.ok(img.subarray(65536, 65536 + 4096).every((x) => x === 0), "Torn record applied");
          // Cut off, and the segment preallocated again: only zeros follow the good records.
          assert.ok(zeroFrom(await Deno.readFile(path), goodBytes), "Torn tail not cut off");
          assert.ok(second.logs.some((m) => /torn tail of \d+ bytes/.test(m)), second.logs.join());
          // Appending continues where the good records end, and replays cleanly next time.
          const later = pattern(2048, 5);
          await post(second.b, writeRecord(8192, later));
          await second.b.close();
          const third = await open(dataDir);
          await third.b.close();
          assert.ok(!third.logs.some((m) => /torn/.test(m)), third.logs.join());
          assert.deepEqual((await secondary(dataDir)).subarray(8192, 8192 + 2048), later);
        } finally {
          await second.b.close();
        }
      }));
  }
});

Deno.test("journal refuses to open with a bad record in a closed segment", async () => {
  await withDir(async (dataDir) => {
    const first = await open(dataDir, { applierPaused: true, journalSegmentBytes: 6000 });
    await register(first.b);
    for (let i = 0; i < 3; i++) await post(first.b, writeRecord(i * 4096, pattern(4096, i)));
    await first.b.close();
    const names = await segmentNames(dataDir);
    assert.equal(names.length, 3, names.join());

    const closed = join(dataDir, "journal", names[1]);
    const bytes = await Deno.readFile(closed);
    bytes[100] ^= 0xff;
    await Deno.writeFile(closed, bytes);
    await assert.rejects(
      openBackup({ dataDir, log: () => {} }),
      (e: Error) =>
        /is corrupt at byte 0 .*checksum.*refuses to start/.test(e.message) &&
        e.message.includes(names[1]),
    );
    // The same damage in the last segment is a torn write, not corruption.
    bytes[100] ^= 0xff;
    await Deno.writeFile(closed, bytes);
    const last = join(dataDir, "journal", names[2]);
    const lastBytes = await Deno.readFile(last);
    lastBytes[100] ^= 0xff;
    await Deno.writeFile(last, lastBytes);
    const second = await open(dataDir);
    await second.b.close();
    assert.ok(second.logs.some((m) => /torn tail/.test(m)));
  });
});

Deno.test("journal reclaims segments once their records are applied and synced", async () => {
  await withDir(async (dataDir) => {
    const { b } = await open(dataDir, { applierPaused: true, journalSegmentBytes: 6000 });
    try {
      await register(b);
      const expected = new Uint8Array(volSize);
      for (let i = 0; i < 6; i++) {
        const data = pattern(4096, i + 10);
        expected.set(data, i * 4096);
        await post(b, writeRecord(i * 4096, data));
      }
      assert.equal((await segmentNames(dataDir)).length, 6);
      b.applier.resume();
      assert.equal((await b.app.request("/v1/flush", { method: "POST" })).status, 200);
      // Deletion runs after the release, on the reclaimer's chain; releasing nothing queues one
      // more reclaim behind the applier's and resolves when all of them are done.
      await b.journal.release([]);
      assert.deepEqual(await segmentNames(dataDir), ["00000000000000000006.log"]);
      assert.equal(b.journal.pendingBytes, 0);
      assert.deepEqual(await secondary(dataDir), expected);
    } finally {
      await b.close();
    }
  });
});

Deno.test("journal replay starts after the last gap in segment numbers", async () => {
  assert.equal(replayStart([]), 0);
  assert.equal(replayStart([4, 5, 6]), 0);
  assert.equal(replayStart([1, 3, 4]), 1);
  assert.equal(replayStart([1, 2, 5, 7, 8]), 3);
  await withDir(async (dataDir) => {
    const first = await open(dataDir);
    await register(first.b);
    await first.b.close();
    // Segment 2 overwrote segment 1's data and was applied, then removed; segment 1's removal
    // was lost in the crash. Replaying 1 would bring the stale bytes back.
    const current = pattern(4096, 21);
    const img = join(dataDir, "volumes", "db0.img");
    const file = await Deno.open(img, { write: true });
    await file.write(current);
    file.close();
    const journalDir = join(dataDir, "journal");
    for await (const e of Deno.readDir(journalDir)) await Deno.remove(join(journalDir, e.name));
    await Deno.writeFile(segmentPath(journalDir, 1), writeRecord(0, pattern(4096, 20)));
    const newest = pattern(512, 22);
    await Deno.writeFile(segmentPath(journalDir, 3), writeRecord(8192, newest));

    const second = await open(dataDir);
    await second.b.close();
    const after = await secondary(dataDir);
    assert.deepEqual(after.subarray(0, 4096), current);
    assert.deepEqual(after.subarray(8192, 8192 + 512), newest);
    assert.deepEqual(await segmentNames(dataDir), ["00000000000000000003.log"]);
  });
});

Deno.test("journal refuses to replay a record for a volume that has no secondary", async () => {
  await withDir(async (dataDir) => {
    const first = await open(dataDir, { applierPaused: true });
    await register(first.b);
    await post(first.b, writeRecord(0, pattern(512, 30)));
    await first.b.close();
    await Deno.remove(join(dataDir, "volumes", "db0.img"));
    await assert.rejects(
      openBackup({ dataDir, log: () => {} }),
      /cannot be replayed: Volume "db0" is not registered/,
    );
  });
});

Deno.test("journal takes a run of zeros after the last record as the end, in every segment", async () => {
  await withDir(async (dataDir) => {
    const first = await open(dataDir, { applierPaused: true, journalSegmentBytes: 6000 });
    await register(first.b);
    const data = [0, 1, 2].map((i) => pattern(4096, 30 + i));
    for (let i = 0; i < 3; i++) await post(first.b, writeRecord(i * 4096, data[i]));
    await first.b.close();
    const names = await segmentNames(dataDir);
    assert.equal(names.length, 3, names.join());
    // Closed segments keep their preallocated zero tail; give the last one the tail a crash
    // (no clean close, no trim) would leave.
    const closedBytes = await Deno.readFile(join(dataDir, "journal", names[0]));
    assert.equal(closedBytes.length, 6000);
    assert.ok(zeroFrom(closedBytes, 4123), "a closed segment lost its preallocated tail");
    const last = join(dataDir, "journal", names[2]);
    await Deno.writeFile(last, new Uint8Array(5000), { append: true });

    const second = await open(dataDir);
    try {
      assert.ok(!second.logs.some((m) => /torn|corrupt/.test(m)), second.logs.join("\n"));
      assert.ok(second.logs.some((m) => /replayed 3 records/.test(m)), second.logs.join("\n"));
      const img = await secondary(dataDir);
      for (let i = 0; i < 3; i++) assert.deepEqual(img.subarray(i * 4096, (i + 1) * 4096), data[i]);
    } finally {
      await second.b.close();
    }
  });
});

Deno.test("applier syncs the secondaries at checkpoints, not after every small batch", async () => {
  await withDir(async (dataDir) => {
    const { b } = await open(dataDir);
    try {
      await register(b);
      for (let i = 0; i < 30; i++) await post(b, writeRecord((i % 16) * 4096, pattern(4096, i)));
      await b.applier.waitApplied(30);
      // Thirty batches applied one by one would have meant thirty syncs before checkpoints.
      assert.ok(b.applier.checkpoints <= 5, `${b.applier.checkpoints} checkpoints for 30 batches`);
      assert.equal(b.applier.recordsApplied, 30);
    } finally {
      await b.close();
    }
  });
});
