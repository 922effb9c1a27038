/** The fault simulation's writers never share a byte within a round, in either layout. */
import assert from "node:assert/strict";
import { rangePicker } from "./support/sim_ranges.ts";
import { seededRandom } from "../src/random.ts";

Deno.test("sim writers' ranges stay inside the area and never overlap another writer's", () => {
  const area = { areaBytes: 1024 * 1024, writers: 3, writeBytesMax: 65536, stripeBytes: 16384 };
  for (const layout of ["slices", "stripes"] as const) {
    const owner = new Int8Array(area.areaBytes).fill(-1);
    for (let w = 0; w < area.writers; w++) {
      const pick = rangePicker(layout, w, area);
      const rand = seededRandom(w + 1);
      for (let i = 0; i < 500; i++) {
        const { offset, length } = pick(rand);
        assert.ok(length >= 1 && length <= area.writeBytesMax, `${layout}: length ${length}`);
        assert.ok(
          offset >= 0 && offset + length <= area.areaBytes,
          `${layout}: ${offset}+${length}`,
        );
        const mine = owner.subarray(offset, offset + length);
        const shared = mine.findIndex((o) => o !== -1 && o !== w);
        assert.equal(shared, -1, `${layout}: byte ${offset + shared} shared with another writer`);
        mine.fill(w);
      }
    }
  }
});
