/**
 * A segment's working form and its stored form (tracker/segment_state.ts): what marks and clears
 * leave is what a decode of the encoded segment gives back, region by region, checked against a
 * plain model; and the set-bit index list agrees with the set-bit walk.
 */
import assert from "node:assert/strict";
import { regionsPerSegment } from "../src/dirty_bitmap.ts";
import { seededRandom } from "../src/random.ts";
import { markEntryBytes, SegmentState, setBitIndexes, setBits } from "../tracker/segment_state.ts";

/** One region in the model: first and last mark time and last mark sequence. */
type Entry = [first: number, last: number, seq: number];

Deno.test("marks and clears survive encode and decode, region by region", async (t) => {
  for (const [name, ops] of [["sparse", 20], ["half", 400], ["full", 5000]] as const) {
    await t.step(name, () => {
      const random = seededRandom(ops);
      const model = new Map<number, Entry>();
      let s = new SegmentState();
      for (let i = 1; i <= ops; i++) {
        const bit = Math.floor(random() * regionsPerSegment);
        const count = Math.min(1 + Math.floor(random() * 3), regionsPerSegment - bit);
        if (random() < 0.1) {
          s.clear(bit, count, i - 5);
          for (let b = bit; b < bit + count; b++) {
            if ((model.get(b)?.[2] ?? Infinity) <= i - 5) model.delete(b);
          }
        } else {
          const time = 1000 + Math.floor(random() * 1000);
          s.mark(bit, count, time, i);
          for (let b = bit; b < bit + count; b++) {
            const e = model.get(b);
            model.set(b, e ? [e[0], Math.max(e[1], time), i] : [time, time, i]);
          }
        }
        // Every few operations the segment goes through its stored form, as a commit does.
        if (i % 7 === 0) s = SegmentState.decode(s.encode(), name);
      }
      const stored = s.encode();
      assert.equal(stored?.record.length ?? 0, model.size * markEntryBytes);
      const back = SegmentState.decode(stored, name);
      assert.equal(back.count, model.size);
      for (let b = 0; b < regionsPerSegment; b++) {
        const e = model.get(b);
        assert.equal(back.has(b), e !== undefined, `region ${b}`);
        if (e) assert.deepEqual([back.firstAt[b], back.lastAt[b], back.lastSeq[b]], e);
      }
    });
  }
});

Deno.test("the set-bit index list is the set-bit walk", () => {
  const random = seededRandom(7);
  for (const density of [0, 0.01, 0.5, 1]) {
    const bits = new Uint8Array(regionsPerSegment / 8);
    for (let b = 0; b < regionsPerSegment; b++) {
      if (random() < density) bits[b >> 3] |= 1 << (b & 7);
    }
    assert.deepEqual([...setBitIndexes(bits)], [...setBits(bits)]);
  }
});
