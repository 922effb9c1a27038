import assert from "node:assert/strict";
import { applyLendBytesMin, ApplyThread } from "../backup/apply_thread.ts";
import type { JournalEntry } from "../backup/journal.ts";
import { encodeRecord } from "../src/journal_record.ts";

const imageBytes = 4 * 1024 * 1024;

async function withImages(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "apply_thread_" });
  try {
    for (const name of ["a", "b"]) {
      const f = await Deno.open(`${dir}/${name}.img`, { write: true, create: true });
      await f.truncate(imageBytes);
      f.close();
    }
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function entry(volume: string, offset: number, data: Uint8Array): JournalEntry {
  return {
    segment: 1,
    offset: 0,
    body: encodeRecord({ kind: "write", volume, offset, length: data.length, data }),
    records: 1,
  };
}

function pattern(bytes: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: bytes }, (_, i) => (i * 31 + seed) & 0xff);
}

async function readAt(path: string, offset: number, length: number): Promise<Uint8Array> {
  const all = await Deno.readFile(path);
  return all.subarray(offset, offset + length);
}

Deno.test("apply thread writes small and lent batches in order and gives lent ones back", async () => {
  await withImages(async (dir) => {
    const thread = new ApplyThread(dir);
    try {
      const big = pattern(applyLendBytesMin * 2, 7);
      const entries = [
        entry("a", 0, pattern(4096, 1)),
        entry("a", 0, big), // lent; overwrites the first
        entry("b", 8192, pattern(4096, 3)),
        entry("a", 4096, pattern(4096, 4)), // after the lent one: lands on top of it
      ];
      const before = entries.map((e) => e.body.slice());
      const touched = new Set<string>();
      await thread.apply(entries, touched);
      assert.deepEqual([...touched].sort(), ["a", "b"]);
      // Every batch is still readable after the step (the lent one came back intact).
      entries.forEach((e, i) => assert.deepEqual(e.body, before[i]));
      const expectA = big.slice();
      expectA.set(pattern(4096, 4), 4096);
      assert.deepEqual(await readAt(`${dir}/a.img`, 0, big.length), expectA);
      assert.deepEqual(await readAt(`${dir}/b.img`, 8192, 4096), pattern(4096, 3));
    } finally {
      await thread.close();
    }
  });
});

Deno.test("apply thread gives a lent batch back when the worker refuses it", async () => {
  await withImages(async (dir) => {
    const thread = new ApplyThread(dir);
    try {
      // Past the image's end: the worker's range check refuses it.
      const bad = entry("a", imageBytes - 4096, pattern(applyLendBytesMin, 9));
      const copy = bad.body.slice();
      await assert.rejects(thread.apply([bad], new Set()), /exceeds|past|size/i);
      assert.deepEqual(bad.body, copy);
    } finally {
      await thread.close();
    }
  });
});
