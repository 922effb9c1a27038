/**
 * The cycle stage (backup/cycle_stage.ts): records of an open cycle are held back from the
 * secondary and applied in order at the commit; a crash at any step of the commit resumes it at
 * the next open; a crash before the commit keeps the secondary at its previous point in time and
 * keeps the stage for the next cycle to continue. "Crash" here is an exception thrown at a named
 * point, after which the stage object is abandoned and a new one opened on the same files.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  type CycleStageOptions,
  CycleStages,
  type StageCrashPoint,
} from "../backup/cycle_stage.ts";
import { SecondaryStore } from "../backup/secondary_store.ts";
import { encodeCycleMarker, encodeRecord } from "../src/journal_record.ts";

const vol = "vol0";
const block = 4096;
const sizeBytes = 64 * block;

interface Fixture {
  dir: string;
  store: SecondaryStore;
  stages: CycleStages;
  reopen(opts?: CycleStageOptions): Promise<void>;
  close(): Promise<void>;
}

async function fixture(opts: CycleStageOptions = {}): Promise<Fixture> {
  const dir = await Deno.makeTempDir({ prefix: "trackmirror-stage-" });
  const quiet = { log: () => {}, ...opts };
  const f: Fixture = {
    dir,
    store: await SecondaryStore.open(join(dir, "volumes")),
    stages: undefined as unknown as CycleStages,
    async reopen(more: CycleStageOptions = {}) {
      f.stages.close();
      f.store.close();
      f.store = await SecondaryStore.open(join(dir, "volumes"));
      f.stages = CycleStages.openSync(dir, f.store, { log: () => {}, ...more });
    },
    async close() {
      f.stages.close();
      f.store.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
  await f.store.register(vol, sizeBytes);
  f.stages = CycleStages.openSync(dir, f.store, quiet);
  return f;
}

/** A write of `blocks` blocks at block `at`, every byte `value`. */
function write(at: number, blocks: number, value: number): Uint8Array {
  const data = new Uint8Array(blocks * block).fill(value);
  return encodeRecord({
    kind: "write",
    volume: vol,
    offset: at * block,
    length: data.length,
    data,
  });
}

const begin = () => encodeCycleMarker("cycle-begin", vol);
const commit = () => encodeCycleMarker("cycle-commit", vol);

/** The first byte of each of the first `n` blocks of the secondary. */
function blocks(store: SecondaryStore, n = 4): number[] {
  return Array.from({ length: n }, (_, i) => store.readSync(vol, i * block, 1)[0]);
}

function feed(stages: CycleStages, ...bodies: Uint8Array[]): void {
  for (const b of bodies) stages.applyBatch(b, new Set());
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test("records outside a cycle go straight to the secondary", async () => {
  const f = await fixture();
  try {
    feed(f.stages, write(0, 1, 7));
    assert.deepEqual(blocks(f.store), [7, 0, 0, 0]);
    assert.deepEqual(f.stages.openCycles(), []);
  } finally {
    await f.close();
  }
});

Deno.test("a cycle's records reach the secondary only at the commit, in order", async () => {
  const f = await fixture({ now: () => 1234 });
  try {
    feed(f.stages, write(0, 2, 1), begin(), write(0, 1, 2), write(1, 2, 3), write(0, 1, 4));
    assert.deepEqual(blocks(f.store), [1, 1, 0, 0], "nothing staged is visible before the commit");
    const [open] = f.stages.openCycles();
    assert.equal(open.volume, vol);
    assert.equal(open.stagedRecords, 3);
    feed(f.stages, commit());
    assert.deepEqual(blocks(f.store), [4, 3, 3, 0]);
    assert.deepEqual(f.stages.openCycles(), []);
    const [point] = f.stages.points(vol);
    assert.equal(point.records, 3);
    assert.equal(point.committedAt, 1234);
    assert.equal(await exists(join(f.dir, "stage", vol)), false, "the stage is removed");
    feed(f.stages, write(3, 1, 5));
    assert.deepEqual(blocks(f.store), [4, 3, 3, 5], "after the commit records apply directly");
  } finally {
    await f.close();
  }
});

Deno.test("a crash before the commit keeps the previous point in time and the stage", async () => {
  const f = await fixture();
  try {
    feed(f.stages, write(0, 1, 1), begin(), write(0, 1, 2), write(1, 1, 2));
    f.stages.syncSync();
    await f.reopen();
    assert.deepEqual(blocks(f.store), [1, 0, 0, 0]);
    assert.equal(f.stages.openCycles()[0].stagedRecords, 2, "the open stage survives");
    // The next resync begins again: the stage is continued, not dropped, then committed.
    feed(f.stages, begin(), write(1, 1, 3), write(2, 1, 3), commit());
    assert.deepEqual(blocks(f.store), [2, 3, 3, 0]);
  } finally {
    await f.close();
  }
});

for (
  const point of [
    "after-commit-marker",
    "mid-apply",
    "after-apply",
    "after-records-removed",
  ] as StageCrashPoint[]
) {
  Deno.test(`a crash ${point} resumes the commit at the next open`, async () => {
    let armed = true;
    const f = await fixture({
      crashAt: (p) => {
        if (armed && p === point) throw new Error(`crash ${p}`);
      },
    });
    try {
      feed(f.stages, write(0, 4, 1), begin(), write(0, 1, 2), write(1, 1, 3), write(0, 1, 4));
      assert.throws(() => feed(f.stages, commit()), /crash/);
      armed = false;
      await f.reopen();
      assert.deepEqual(blocks(f.store), [4, 3, 1, 1]);
      assert.deepEqual(f.stages.openCycles(), []);
      assert.equal(f.stages.points(vol).length, 1, "one point, even when its apply ran twice");
      assert.equal(await exists(join(f.dir, "stage", vol)), false);
      // Journal replay then brings the commit and later records again: harmless.
      feed(f.stages, commit(), write(2, 1, 9));
      assert.deepEqual(blocks(f.store), [4, 3, 9, 1]);
    } finally {
      await f.close();
    }
  });
}

Deno.test("a torn stage tail is cut at open; replay appends the records again", async () => {
  const f = await fixture();
  try {
    const late = write(1, 1, 3);
    feed(f.stages, begin(), write(0, 1, 2), late);
    f.stages.syncSync();
    const path = join(f.dir, "stage", vol, "records");
    const size = (await Deno.stat(path)).size;
    await Deno.truncate(path, size - 100);
    await f.reopen();
    assert.equal(f.stages.openCycles()[0].stagedRecords, 1);
    // The torn record was not released from the journal: replay stages it again.
    feed(f.stages, late, commit());
    assert.deepEqual(blocks(f.store), [2, 3, 0, 0]);
  } finally {
    await f.close();
  }
});

Deno.test("a repeated suffix of a cycle (replay of unreleased batches) changes nothing", async () => {
  const f = await fixture();
  try {
    const a = write(0, 2, 2);
    const b = write(1, 1, 3);
    feed(f.stages, begin(), a, b);
    f.stages.syncSync();
    await f.reopen();
    feed(f.stages, a, b, commit());
    assert.deepEqual(blocks(f.store), [2, 3, 0, 0]);
  } finally {
    await f.close();
  }
});

Deno.test("a stage past stageBytesMax spills: applied as is, no point recorded", async () => {
  const f = await fixture({ stageBytesMax: 2 * block });
  try {
    feed(f.stages, begin(), write(0, 1, 2));
    assert.deepEqual(blocks(f.store), [0, 0, 0, 0]);
    feed(f.stages, write(1, 2, 3));
    assert.deepEqual(blocks(f.store), [2, 3, 3, 0], "the spilled stage is applied");
    feed(f.stages, write(3, 1, 4));
    assert.deepEqual(blocks(f.store), [2, 3, 3, 4], "the rest of the cycle goes straight through");
    feed(f.stages, commit());
    assert.equal(f.stages.spills, 1);
    assert.deepEqual(f.stages.points(vol), []);
  } finally {
    await f.close();
  }
});

Deno.test("points keep the newest pointsKeptMax", async () => {
  const f = await fixture();
  try {
    for (let i = 0; i < 40; i++) feed(f.stages, begin(), write(0, 1, i), commit());
    const points = f.stages.points(vol);
    assert.equal(points.length, 32);
    assert.deepEqual(blocks(f.store, 1), [39]);
  } finally {
    await f.close();
  }
});

Deno.test("replay from the start of a kept segment skips what the stage and the secondary reflect", async () => {
  const f = await fixture();
  try {
    // The journal as the applier saw it, each batch at its position in segment 1.
    const journal = [
      write(0, 1, 1),
      begin(),
      write(0, 1, 2),
      commit(),
      write(1, 1, 3), // straight to the secondary after the commit
      begin(),
      write(0, 2, 4), // staged in the open cycle
    ];
    const positions: number[] = [];
    let offset = 0;
    for (const body of journal) {
      positions.push(offset);
      offset += body.length;
    }
    const replay = (upTo: number) => {
      for (let i = 0; i < upTo; i++) {
        f.stages.applyBatch(journal[i], new Set(), { segment: 1, offset: positions[i] });
      }
    };
    replay(journal.length);
    f.stages.syncSync();
    assert.deepEqual(blocks(f.store), [2, 3, 0, 0]);
    await f.reopen();
    // Replay starts at the segment's first record: the old cycle's commit must not commit the
    // open one, and the old cycle's records must not be staged again after newer ones.
    replay(journal.length);
    assert.deepEqual(blocks(f.store), [2, 3, 0, 0], "the secondary keeps its point in time");
    assert.equal(f.stages.openCycles()[0].stagedRecords, 1);
    f.stages.applyBatch(commit(), new Set(), { segment: 1, offset });
    assert.deepEqual(blocks(f.store), [4, 4, 0, 0]);
    assert.equal(f.stages.points(vol).length, 2);
  } finally {
    await f.close();
  }
});
