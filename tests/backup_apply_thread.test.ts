import assert from "node:assert/strict";
import { applyLendBytesMin, ApplyThread } from "../backup/apply_thread.ts";
import type { JournalEntry } from "../backup/journal.ts";
import { encodeCycleMarker, encodeRecord } from "../src/journal_record.ts";
import { openBackup } from "../backup/service.ts";

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

Deno.test("in one applier step, a write after a commit lands over the committed stage; other volumes' writes go straight", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "apply_thread_cycle_" });
  const backup = await openBackup({ dataDir, applierPaused: true, log: () => {} });
  const req = (path: string, init?: RequestInit) => Promise.resolve(backup.app.request(path, init));
  const post = async (volume: string, body: Uint8Array) => {
    const res = await req(`/v1/volumes/${volume}/writes`, {
      method: "POST",
      headers: { "content-type": "application/octet-stream" },
      body: body as BodyInit,
    });
    assert.equal(res.status, 200, await res.text());
  };
  const write = (volume: string, offset: number, value: number) =>
    encodeRecord({
      kind: "write",
      volume,
      offset,
      length: 4096,
      data: new Uint8Array(4096).fill(value),
    });
  try {
    for (const name of ["db0", "db1"]) {
      const put = await req(`/v1/volumes/${name}`, {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ sizeBytes: imageBytes }),
      });
      assert.equal(put.status, 201);
    }
    // Held back, so the applier takes every batch below in one step.
    await post("db0", encodeCycleMarker("cycle-begin", "db0"));
    await post("db0", write("db0", 0, 2)); // staged
    await post("db1", write("db1", 0, 7)); // straight, while db0's cycle is open
    await post("db0", encodeCycleMarker("cycle-commit", "db0"));
    await post("db0", write("db0", 0, 3)); // straight, after the commit: must land last
    await post("db1", write("db1", 4096, 8));
    backup.applier.resume();
    assert.equal((await req("/v1/flush", { method: "POST" })).status, 200);
    const at = (name: string, offset: number) => backup.store.readSync(name, offset, 1)[0];
    assert.deepEqual([at("db0", 0), at("db1", 0), at("db1", 4096)], [3, 7, 8]);
    assert.equal(backup.stages.points("db0").length, 1);
    assert.equal(backup.stages.points("db0")[0].records, 1);
  } finally {
    await backup.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});
