import assert from "node:assert/strict";
import { BackupBatcher } from "../host/fork/backup_batcher.ts";
import { TrackerMarker } from "../host/fork/tracker_marker.ts";
import { RangeLock } from "../host/fork/range_lock.ts";
import { decodeRecord, type JournalRecord } from "../src/journal_record.ts";
import type { TrackRequest } from "../src/schemas.ts";

function decodeAll(body: Uint8Array): JournalRecord[] {
  const out: JournalRecord[] = [];
  for (let pos = 0; pos < body.length;) {
    const r = decodeRecord(body, pos);
    assert.ok(r.ok, `record at ${pos}`);
    out.push(r.record);
    pos = r.next;
  }
  return out;
}

Deno.test("concurrent mirror writes are coalesced into few backup batches, in order", async () => {
  const bodies: Uint8Array[] = [];
  const batcher = new BackupBatcher(
    {
      async writeBatch(volume, body) {
        assert.equal(volume, "vol0");
        bodies.push(body.slice());
        await new Promise((r) => setTimeout(r, 5));
      },
    },
    "vol0",
    { inflightBatchesMax: 1 },
  );
  const writes = Array.from(
    { length: 100 },
    (_, i) =>
      batcher.submit({
        kind: "write",
        offset: i * 512,
        length: 512,
        data: new Uint8Array(512).fill(i),
      }),
  );
  await Promise.all(writes);
  assert.ok(bodies.length <= 3, `expected few batches, got ${bodies.length}`);
  const records = bodies.flatMap(decodeAll);
  assert.equal(records.length, 100);
  records.forEach((r, i) => {
    assert.equal(r.offset, i * 512);
    assert.equal(r.data[0], i);
  });
});

Deno.test("a batch bounded by batchRecordsMax and batchBytesMax is split", async () => {
  const sizes: number[] = [];
  const batcher = new BackupBatcher(
    {
      async writeBatch(_v, body) {
        sizes.push(decodeAll(body).length);
        await new Promise((r) => setTimeout(r, 2));
      },
    },
    "v",
    { inflightBatchesMax: 1, batchRecordsMax: 10 },
  );
  await Promise.all(
    Array.from({ length: 41 }, (_, i) => batcher.submit({ kind: "zero", offset: i, length: 1 })),
  );
  assert.ok(sizes.every((n) => n <= 10), sizes.join(","));
  assert.equal(sizes.reduce((a, b) => a + b), 41);
});

Deno.test("a failed batch rejects every write in it", async () => {
  const batcher = new BackupBatcher({
    writeBatch: () => Promise.reject(new Error("503 journal full")),
  }, "v");
  const results = await Promise.allSettled(
    Array.from({ length: 5 }, (_, i) => batcher.submit({ kind: "zero", offset: i, length: 1 })),
  );
  assert.ok(results.every((r) => r.status === "rejected"));
});

Deno.test("tracker marker coalesces marks and skips regions it knows are marked", async () => {
  const sent: TrackRequest[] = [];
  const marker = new TrackerMarker(
    {
      async track(req) {
        sent.push(req);
        await new Promise((r) => setTimeout(r, 5));
      },
    },
    "host0",
    "vol0",
    65536,
    1 << 30,
    () => 1,
  );
  await Promise.all(Array.from({ length: 50 }, (_, i) => marker.ensureMarked(i * 65536, 100)));
  assert.ok(sent.length <= 3, `expected coalesced commands, got ${sent.length}`);
  assert.equal(sent.flatMap((s) => s.extents).length, 50);
  const before = sent.length;
  await marker.ensureMarked(3 * 65536 + 7, 1000); // inside a region already marked
  assert.equal(sent.length, before);
  assert.equal(marker.cacheHits, 1);
  marker.forget({ first: 3, count: 1 });
  await marker.ensureMarked(3 * 65536 + 7, 1000);
  assert.equal(sent.length, before + 1, "a forgotten region is marked again");
});

Deno.test("a failed tracking command caches nothing", async () => {
  let fail = true;
  const marker = new TrackerMarker(
    {
      track: () => fail ? Promise.reject(new Error("down")) : Promise.resolve(),
    },
    "h",
    "v",
    4096,
    1 << 20,
    () => 0,
  );
  await assert.rejects(() => marker.ensureMarked(0, 10), /down/);
  assert.equal(marker.cache.size, 0);
  fail = false;
  await marker.ensureMarked(0, 10);
  assert.equal(marker.cache.size, 1);
});

Deno.test("range lock serves overlapping acquirers first come first served", async () => {
  const locks = new RangeLock();
  const order: string[] = [];
  const a = await locks.acquire(0, 100);
  const b = locks.acquire(50, 100).then((release) => {
    order.push("b");
    release();
  });
  const c = locks.acquire(120, 10).then((release) => {
    order.push("c");
    release();
  });
  const d = locks.acquire(0, 10).then((release) => {
    order.push("d");
    release();
  });
  await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(order, [], "c overlaps b which waits; d overlaps a");
  a();
  await Promise.all([b, c, d]);
  assert.equal(order[0], "b");
  assert.equal(locks.size, 0);
});

Deno.test("prediction marks ahead for a stream, not for a lone write", async () => {
  const sent: TrackRequest[] = [];
  const marker = new TrackerMarker(
    {
      track(req) {
        sent.push(req);
        return Promise.resolve();
      },
    },
    "h",
    "v",
    4096,
    100 * 4096,
    () => 0,
    7,
  );
  await marker.ensureMarked(50 * 4096, 10); // a lone write: its own region only
  assert.deepEqual(sent[0].extents, [{ offset: 50 * 4096, length: 4096 }]);
  sent.length = 0;
  for (let off = 0; off < 100 * 4096; off += 4096) await marker.ensureMarked(off, 4096);
  assert.deepEqual(sent[0].extents, [{ offset: 0, length: 4096 }], "a stream starts alone");
  assert.deepEqual(sent[1].extents, [{ offset: 4096, length: 8 * 4096 }], "then marks 7 ahead");
  assert.ok(sent.length <= 1 + Math.ceil(99 / 8), `${sent.length} commands for 100 regions`);
  const last = sent.at(-1)!.extents[0];
  assert.ok(last.offset + last.length <= 100 * 4096, "prediction stops at the volume's end");
});

Deno.test("concurrent writes to one cold region share one tracking command", async () => {
  let calls = 0;
  const marker = new TrackerMarker(
    {
      async track() {
        calls++;
        await new Promise((r) => setTimeout(r, 5));
      },
    },
    "h",
    "v",
    65536,
    1 << 20,
    () => 0,
    16,
  );
  await Promise.all(Array.from({ length: 16 }, (_, i) => marker.ensureMarked(i * 4096, 4096)));
  assert.equal(calls, 1);
});

Deno.test("regions forgotten while a mark is in flight are not cached when it is answered", async () => {
  const hold: { gate?: Promise<void> } = {};
  const marker = new TrackerMarker(
    { track: () => hold.gate ?? Promise.resolve() },
    "h",
    "v",
    4096,
    1 << 20,
    () => 0,
    3,
  );
  await marker.ensureMarked(0, 4096); // region 0: a stream can start here
  let open!: () => void;
  hold.gate = new Promise<void>((resolve) => (open = resolve));
  const pending = marker.ensureMarked(4096, 4096); // a stream: marks regions 1..4
  await new Promise((r) => setTimeout(r, 5));
  marker.forget({ first: 3, count: 1 }); // a resync cleared region 3 meanwhile
  open();
  await pending;
  assert.ok(marker.cache.has(1) && marker.cache.has(2) && marker.cache.has(4));
  assert.ok(!marker.cache.has(3), "a forgotten region must be marked again before it is trusted");
});

Deno.test("a stream marks its next window before it gets there", async () => {
  let calls = 0;
  const tracker = {
    async track() {
      calls++;
      await new Promise((r) => setTimeout(r, 1));
    },
  };
  const marker = new TrackerMarker(tracker, "h", "v", 4096, 1000 * 4096, () => 0, 16);
  for (let off = 0; off < 200 * 4096; off += 4096) {
    await marker.ensureMarked(off, 4096);
    await new Promise((r) => setTimeout(r, 2)); // the application's pace
  }
  // Without marking ahead, every 17th write would wait for the tracker: about 188 of 200 hits.
  const hits = marker.cacheHits;
  assert.ok(hits >= 195, `only ${hits} of 200 writes found their marks ready`);
  assert.ok(calls <= 2 + Math.ceil(200 / 17) * 2, `${calls} commands`);
});
