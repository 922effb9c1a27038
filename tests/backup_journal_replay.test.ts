/**
 * Journal replay on hand-made segments: what a tear looks like (unwritten zero sectors) against
 * corruption with valid records after it, and short unaligned zero tails (found by fuzzing).
 */
import assert from "node:assert/strict";
import { replayJournal, sectorBytes } from "../backup/journal_replay.ts";
import { segmentPath } from "../backup/segment_files.ts";
import { encodeRecord, type JournalRecord } from "../src/journal_record.ts";

/** A write record of `length` non-zero bytes. */
const write = (offset: number, length: number) =>
  encodeRecord({
    kind: "write",
    volume: "db0",
    offset,
    length,
    data: new Uint8Array(length).fill(0x11 + offset % 200),
  });

function segment(records: Uint8Array[], zeroTail: number): Uint8Array {
  const total = records.reduce((n, r) => n + r.length, 0);
  const out = new Uint8Array(total + zeroTail);
  let at = 0;
  for (const r of records) {
    out.set(r, at);
    at += r.length;
  }
  return out;
}

async function replay(bytes: Uint8Array) {
  const dir = await Deno.makeTempDir({ prefix: "journal_replay_" });
  try {
    await Deno.writeFile(segmentPath(dir, 1), bytes);
    const applied: JournalRecord[] = [];
    const logs: string[] = [];
    try {
      const result = await replayJournal(dir, (r) => applied.push(r), (m) => logs.push(m));
      return { result, applied, logs, after: await Deno.readFile(segmentPath(dir, 1)) };
    } catch (error) {
      return {
        error: error as Error,
        applied,
        logs,
        after: await Deno.readFile(segmentPath(dir, 1)),
      };
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("replay refuses a flipped bit in the last segment when valid records follow it", async () => {
  const records = [write(0, 3000), write(4096, 3000), write(8192, 3000)];
  const bytes = segment(records, 4096);
  bytes[records[0].length + 1500] ^= 0x10; // inside the payload of the second record
  const r = await replay(bytes);
  assert.ok(r.error, "replay must refuse");
  assert.match(
    r.error.message,
    /is corrupt at byte 3027 of \d+: Record checksum mismatch at byte 3027, and a valid record follows at byte 6054/,
  );
  assert.match(r.error.message, /truncate the segment to 3027 bytes/);
  assert.equal(r.applied.length, 1);
  assert.deepEqual(r.after, bytes, "the segment is left as it was");
});

Deno.test("replay cuts a tear: an unwritten sector, then records that did reach the disk", async () => {
  const records = [write(0, 3000), write(4096, 3000), write(8192, 3000)];
  const bytes = segment(records, 4096);
  const sector = Math.ceil((records[0].length + 100) / sectorBytes) * sectorBytes;
  bytes.fill(0, sector, sector + sectorBytes); // one sector of the second record never written
  const r = await replay(bytes);
  assert.equal(r.error, undefined);
  assert.equal(r.applied.length, 1);
  assert.equal(r.result?.lastSegmentBytes, records[0].length);
  assert.match(r.logs.join("\n"), /torn tail .* a valid record at byte 6054 went with it/);
  assert.equal(r.after.length, records[0].length);
});

Deno.test("replay takes a zero tail of fewer than 8 bytes at an unaligned end as the end", async () => {
  // 24 + 3 + 1 = 28 bytes of record, then 1 zero: the old 8-byte scan threw a RangeError here.
  for (const tail of [1, 3, 7]) {
    const r = await replay(segment([write(0, 1)], tail));
    assert.equal(r.error, undefined, `tail ${tail}: ${r.error?.message}`);
    assert.equal(r.applied.length, 1);
  }
});
