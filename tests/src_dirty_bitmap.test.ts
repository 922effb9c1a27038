import assert from "node:assert/strict";
import { seededRandom as mulberry32 } from "../src/random.ts";
import {
  bitRuns,
  clearBits,
  DirtyBitmap,
  popcount,
  regionsPerSegment,
  segmentBytes,
  segmentPieces,
  setBits,
  testBit,
} from "../src/dirty_bitmap.ts";
import type { RegionRun } from "../src/extent.ts";

const S = regionsPerSegment;

/** Runs of consecutive members of a set of region indexes, ascending. */
function modelRuns(model: Set<number>): RegionRun[] {
  const runs: RegionRun[] = [];
  for (const r of [...model].sort((a, b) => a - b)) {
    const last = runs.at(-1);
    if (last && last.first + last.count === r) last.count++;
    else runs.push({ first: r, count: 1 });
  }
  return runs;
}

Deno.test("a segment is a whole number of bytes", () => {
  assert.equal(S % 8, 0);
  assert.equal(segmentBytes * 8, S);
});

Deno.test("bitRuns finds runs of set bits, including runs across byte boundaries", async (t) => {
  const cases: [string, number[], RegionRun[]][] = [
    ["no bits", [0, 0, 0], []],
    ["one full byte", [0xff], [{ first: 0, count: 8 }]],
    ["the first and the last bit", [0x01, 0x80], [{ first: 0, count: 1 }, {
      first: 15,
      count: 1,
    }]],
    ["a run over a byte boundary", [0x80, 0x01], [{ first: 7, count: 2 }]],
    ["a run over two whole bytes", [0xff, 0xff], [{ first: 0, count: 16 }]],
    ["a run in the middle of a byte", [0b0011_1100], [{ first: 2, count: 4 }]],
    ["a run after empty bytes", [0, 0, 0x10], [{ first: 20, count: 1 }]],
    ["upper nibble then lower nibble", [0xf0, 0x0f], [{ first: 4, count: 8 }]],
    ["alternating bits", [0b0101_0101], [0, 2, 4, 6].map((first) => ({ first, count: 1 }))],
    ["a run ending at the last bit", [0, 0xc0], [{ first: 14, count: 2 }]],
  ];
  for (const [name, bytes, runs] of cases) {
    await t.step(name, () => assert.deepEqual([...bitRuns(Uint8Array.from(bytes))], runs));
  }
});

Deno.test("setBits and clearBits count only the bits they change", () => {
  const bits = new Uint8Array(4);
  assert.equal(setBits(bits, 6, 4), 4);
  assert.deepEqual([...bits], [0xc0, 0x03, 0, 0]);
  assert.equal(setBits(bits, 4, 8), 4, "bits 6..9 were already set");
  assert.equal(popcount(bits), 8);
  assert.ok(testBit(bits, 4) && testBit(bits, 11) && !testBit(bits, 3) && !testBit(bits, 12));
  assert.equal(clearBits(bits, 0, 6), 2);
  assert.equal(clearBits(bits, 0, 6), 0);
  assert.equal(popcount(bits), 6);
  assert.deepEqual([...bitRuns(bits)], [{ first: 6, count: 6 }]);
});

Deno.test("segmentPieces splits a run at every segment boundary", async (t) => {
  const cases: [string, RegionRun, [number, number, number][]][] = [
    ["inside one segment", { first: 10, count: 5 }, [[0, 10, 5]]],
    ["exactly one segment", { first: S, count: S }, [[1, 0, S]]],
    ["over one boundary", { first: S - 1, count: 2 }, [[0, S - 1, 1], [1, 0, 1]]],
    ["over several segments", { first: 1000, count: 2100 }, [
      [0, 1000, S - 1000],
      [1, 0, S],
      [2, 0, S],
      [3, 0, 2100 - (S - 1000) - 2 * S],
    ]],
    ["empty", { first: 7, count: 0 }, []],
  ];
  for (const [name, run, pieces] of cases) {
    await t.step(name, () => assert.deepEqual([...segmentPieces(run)], pieces));
  }
});

Deno.test("dirty bitmap merges a run across a segment boundary back into one run", () => {
  const bm = new DirtyBitmap();
  assert.equal(bm.set({ first: S - 4, count: 10 }), 10);
  assert.equal(bm.size, 10);
  assert.ok(bm.has(S - 4) && bm.has(S - 1) && bm.has(S) && bm.has(S + 5));
  assert.ok(!bm.has(S - 5) && !bm.has(S + 6));
  assert.ok(bm.hasAll({ first: S - 4, count: 10 }));
  assert.ok(!bm.hasAll({ first: S - 4, count: 11 }));
  assert.deepEqual([...bm.runs()], [{ first: S - 4, count: 10 }]);
});

Deno.test("dirty bitmap keeps runs apart when a gap falls on a segment boundary", () => {
  const bm = new DirtyBitmap();
  bm.set({ first: S - 1, count: 1 });
  bm.set({ first: S + 1, count: 1 });
  bm.set({ first: 3 * S, count: 1 });
  assert.deepEqual([...bm.runs()], [
    { first: S - 1, count: 1 },
    { first: S + 1, count: 1 },
    { first: 3 * S, count: 1 },
  ]);
});

Deno.test("dirty bitmap joins whole segments set in any order into one run", () => {
  const bm = new DirtyBitmap();
  bm.set({ first: 2 * S, count: S });
  bm.set({ first: 0, count: S });
  bm.set({ first: S, count: S });
  assert.equal(bm.size, 3 * S);
  assert.deepEqual([...bm.runs()], [{ first: 0, count: 3 * S }]);
});

Deno.test("dirty bitmap set and clear report only regions whose mark changed", () => {
  const bm = new DirtyBitmap();
  assert.equal(bm.set({ first: 100, count: 50 }), 50);
  assert.equal(bm.set({ first: 120, count: 50 }), 20);
  assert.equal(bm.size, 70);
  assert.equal(bm.clear({ first: 0, count: 110 }), 10);
  assert.equal(bm.clear({ first: 0, count: 110 }), 0);
  assert.equal(bm.clear({ first: 5 * S, count: 10 }), 0, "clearing a segment never set");
  assert.equal(bm.size, 60);
  assert.deepEqual([...bm.runs()], [{ first: 110, count: 60 }]);
  assert.equal(bm.set({ first: 0, count: 0 }), 0);
  assert.ok(bm.hasAll({ first: 0, count: 0 }));
});

Deno.test("dirty bitmap holds regions far apart without allocating the space between", () => {
  const bm = new DirtyBitmap();
  const far = 2 ** 40; // region 2^40 of 64 KiB regions is 64 PiB in; a dense bitmap would need 128 GiB
  bm.set({ first: far - 1, count: 3 });
  bm.set({ first: 5, count: 1 });
  assert.equal(bm.size, 4);
  assert.ok(bm.has(far + 1) && !bm.has(far + 2));
  assert.deepEqual([...bm.runs()], [{ first: 5, count: 1 }, { first: far - 1, count: 3 }]);
});

Deno.test("dirty bitmap clear of every region leaves it empty, and reset empties it", () => {
  const bm = new DirtyBitmap();
  bm.set({ first: 10, count: 3 * S });
  assert.equal(bm.clear({ first: 0, count: 5 * S }), 3 * S);
  assert.equal(bm.size, 0);
  assert.deepEqual([...bm.runs()], []);
  bm.set({ first: 7, count: 2 * S });
  bm.reset();
  assert.equal(bm.size, 0);
  assert.ok(!bm.has(7));
  assert.deepEqual([...bm.runs()], []);
});

Deno.test("dirty bitmap runs may be cleared while they are being listed", () => {
  const bm = new DirtyBitmap();
  bm.set({ first: S - 3, count: 6 });
  bm.set({ first: 2 * S + 9, count: 1 });
  bm.set({ first: 4 * S, count: S + 1 });
  const seen: RegionRun[] = [];
  for (const run of bm.runs()) {
    seen.push({ ...run });
    bm.clear(run);
  }
  assert.deepEqual(seen, [
    { first: S - 3, count: 6 },
    { first: 2 * S + 9, count: 1 },
    { first: 4 * S, count: S + 1 },
  ]);
  assert.equal(bm.size, 0);
});

Deno.test("dirty bitmap matches a Set model under seeded random set and clear", async (t) => {
  const seeds = [1, 2, 3, 42, 0xdeadbeef, Date.now() >>> 0];
  const span = 5 * S + 37; // several segments and a partial one
  for (const seed of seeds) {
    await t.step(`seed ${seed}`, () => {
      const random = mulberry32(seed);
      const int = (n: number) => Math.floor(random() * n);
      const bm = new DirtyBitmap();
      const model = new Set<number>();
      for (let op = 0; op < 400; op++) {
        // Mostly short runs near segment boundaries, sometimes long ones over several segments.
        const first = random() < 0.5 ? Math.max(0, (1 + int(5)) * S - 8 + int(16)) : int(span);
        const count = random() < 0.2 ? int(3 * S) : int(40);
        const run = { first, count };
        const where = `seed ${seed} (add it to the seed list to replay), op ${op}`;
        if (random() < 0.6) {
          let added = 0;
          for (let r = first; r < first + count; r++) {
            if (!model.has(r)) {
              model.add(r);
              added++;
            }
          }
          assert.equal(bm.set(run), added, `${where}: set(${first}, ${count}) newly marked`);
        } else {
          let removed = 0;
          for (let r = first; r < first + count; r++) if (model.delete(r)) removed++;
          assert.equal(bm.clear(run), removed, `${where}: clear(${first}, ${count}) removed`);
        }
        assert.equal(bm.size, model.size, `${where}: size`);
        assert.deepEqual([...bm.runs()], modelRuns(model), `${where}: runs`);
        const probe = int(span);
        assert.equal(bm.has(probe), model.has(probe), `${where}: has(${probe})`);
        const all = { first: int(span), count: 1 + int(20) };
        let expected = true;
        for (let r = all.first; r < all.first + all.count; r++) expected &&= model.has(r);
        assert.equal(bm.hasAll(all), expected, `${where}: hasAll(${all.first}, ${all.count})`);
      }
    });
  }
});
