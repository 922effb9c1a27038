/** The host's backup batcher: coalescing mirror writes into batches, their bounds and fate. */
import assert from "node:assert/strict";
import { BackupBatcher } from "../host/fork/backup_batcher.ts";
import { decodeRecord, encodedRecordBytes, type JournalRecord } from "../src/journal_record.ts";
import { gate } from "./support/gate.ts";

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

Deno.test("writes queued behind a batch in flight leave together in the next batch, in order", async () => {
  const bodies: Uint8Array[] = [];
  const answer = gate();
  const batcher = new BackupBatcher(
    {
      async writeBatch(volume, body) {
        assert.equal(volume, "vol0");
        bodies.push(body.slice());
        await answer.opened;
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
  assert.equal(bodies.length, 1, "the first write leaves at once, alone");
  answer.open();
  await Promise.all(writes);
  assert.deepEqual(bodies.map((b) => decodeAll(b).length), [1, 99]);
  const records = bodies.flatMap(decodeAll);
  records.forEach((r, i) => {
    assert.equal(r.offset, i * 512);
    assert.equal(r.data[0], i);
  });
});

Deno.test("a batch is split at batchRecordsMax and at batchBytesMax", async (t) => {
  const recordBytes = encodedRecordBytes("v", "zero", 1);
  const cases = [
    { name: "batchRecordsMax", opts: { batchRecordsMax: 10 } },
    { name: "batchBytesMax", opts: { batchBytesMax: 10 * recordBytes + recordBytes - 1 } },
  ];
  for (const { name, opts } of cases) {
    await t.step(name, async () => {
      const sizes: number[] = [];
      const answer = gate();
      const batcher = new BackupBatcher(
        {
          async writeBatch(_v, body) {
            sizes.push(decodeAll(body).length);
            await answer.opened;
          },
        },
        "v",
        { inflightBatchesMax: 1, ...opts },
      );
      const writes = Array.from(
        { length: 41 },
        (_, i) => batcher.submit({ kind: "zero", offset: i, length: 1 }),
      );
      answer.open();
      await Promise.all(writes);
      assert.deepEqual(sizes, [1, 10, 10, 10, 10]);
    });
  }
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
