/**
 * The host's dirty record for `trackmirror:dirty` (host/agent/dirty_extents.ts): the union of the
 * tracker's log, the ranges under the range lock and the unhardened regions, cut to the asked
 * range; the log is read only up to the range's end; a tracker that fails fails the answer.
 */
import assert from "node:assert/strict";
import { volumeDirtyExtents } from "../host/agent/dirty_extents.ts";
import { RangeLock } from "../host/fork/range_lock.ts";
import type { Extent } from "../src/extent.ts";
import type { LogPage } from "../src/schemas.ts";

const region = 64 * 1024;
const sizeBytes = 64 * region;

/** A tracker whose log is `pages` of extents; counts the pages read; fails when `failing`. */
function fakeTracker(pages: Extent[][], failing = false) {
  const t = {
    pagesRead: 0,
    async *log(volume: string): AsyncGenerator<LogPage> {
      if (failing) throw new Error(`Tracker answered 503 for volume "${volume}"`);
      for (const [i, extents] of pages.entries()) {
        t.pagesRead++;
        yield {
          volume,
          regionBytes: region,
          sizeBytes,
          token: "1",
          extents: extents.map((e) => ({ ...e, firstMarkedAt: 0, lastMarkedAt: 0 })),
          nextCursor: i + 1 < pages.length ? `1:${i + 1}` : null,
        };
        await Promise.resolve();
      }
    },
  };
  return t;
}

Deno.test("dirty extents: tracker marks, locked ranges and unhardened regions, merged and cut", async () => {
  const tracker = fakeTracker([[{ offset: 0, length: 2 * region }], [{
    offset: 10 * region,
    length: region,
  }]]);
  const locks = new RangeLock();
  const release = await locks.acquire(5 * region + 100, 50); // a write in flight
  const source = volumeDirtyExtents({
    volume: "vol0",
    sizeBytes,
    regionBytes: region,
    tracker,
    lockedRanges: () => locks.ranges(),
    unhardenedRegions: () => [2, 20],
  });
  assert.deepEqual(await source.dirtyExtents(region, 20 * region), [
    { offset: 0, length: 3 * region }, // marks 0-1 and unhardened region 2 touch
    { offset: 5 * region + 100, length: 50 },
    { offset: 10 * region, length: region },
    { offset: 20 * region, length: region },
  ]);
  release();
  assert.deepEqual(await source.dirtyExtents(4 * region, 2 * region), []);
});

Deno.test("dirty extents: the log is not read past the range's end", async () => {
  const tracker = fakeTracker([
    [{ offset: 0, length: region }],
    [{ offset: 30 * region, length: region }],
    [{ offset: 40 * region, length: region }],
  ]);
  const source = volumeDirtyExtents({
    volume: "vol0",
    sizeBytes,
    regionBytes: region,
    tracker,
    lockedRanges: () => [],
    unhardenedRegions: () => [],
  });
  assert.deepEqual(await source.dirtyExtents(0, 8 * region), [{ offset: 0, length: region }]);
  assert.equal(tracker.pagesRead, 2, "the page past the end ends the walk; the third is not read");
});

Deno.test("dirty extents: a tracker that does not answer fails the answer", async () => {
  const source = volumeDirtyExtents({
    volume: "vol0",
    sizeBytes,
    regionBytes: region,
    tracker: fakeTracker([], true),
    lockedRanges: () => [],
    unhardenedRegions: () => [],
  });
  await assert.rejects(source.dirtyExtents(0, region), /503 for volume "vol0"/);
});

Deno.test("dirty extents: a record that does not cover every difference yet fails the answer", async () => {
  const tracker = fakeTracker([[{ offset: 0, length: region }]]);
  let refusal: string | null =
    "the activity marks of this host's previous run are not yet promoted";
  const source = volumeDirtyExtents({
    volume: "vol0",
    sizeBytes,
    regionBytes: region,
    tracker,
    lockedRanges: () => [],
    unhardenedRegions: () => [],
    refusal: () => refusal,
  });
  await assert.rejects(
    source.dirtyExtents(0, region),
    /No dirty map of volume "vol0": the activity marks .* not yet promoted/,
  );
  assert.equal(tracker.pagesRead, 0);
  refusal = null;
  assert.deepEqual(await source.dirtyExtents(0, region), [{ offset: 0, length: region }]);
});
