/**
 * The tracker's events in-process: a volume registered, dirty on its first mark after clean (not
 * on later marks), clean when a clear leaves nothing marked, and a lease moved by takeover. Read
 * from the process's event log, as `GET /v1/events` serves it.
 */
import assert from "node:assert/strict";
import { processEvents, type TrackmirrorEvent } from "../src/events.ts";
import { setLogQuiet } from "../src/log_line.ts";
import { regionBytesTest as R, trackerHarness } from "./support/tracker_harness.ts";

/** The tracker's events emitted while `fn` runs, as "kind volume" strings. */
async function eventsOf(fn: () => Promise<void>): Promise<TrackmirrorEvent[]> {
  const seen: TrackmirrorEvent[] = [];
  const unsubscribe = processEvents.subscribe((e) => {
    if (e.service === "tracker" && e.kind !== "log") seen.push(e);
  });
  setLogQuiet(true);
  try {
    await fn();
  } finally {
    setLogQuiet(false);
    unsubscribe();
  }
  return seen;
}

Deno.test("the tracker tells registration, dirty after clean, clean after the last clear, takeover", async () => {
  const h = await trackerHarness();
  try {
    const events = await eventsOf(async () => {
      await h.register("db0", 64 * R, { ownerInstance: "i1" });
      await h.register("db0", 64 * R, { ownerInstance: "i1" }); // a renewal: nothing to tell
      await h.track("db0", [{ offset: 0, length: R }]);
      await h.track("db0", [{ offset: 4 * R, length: 2 * R }]); // already dirty: nothing
      const { token } = (await h.logAll("db0"))[0];
      await h.ok("POST", "/v1/volumes/db0/clear", { token, extents: [{ offset: 0, length: R }] });
      await h.ok("POST", "/v1/volumes/db0/clear", { token }); // the rest: clean
      await h.track("db0", [{ offset: 8 * R, length: R }]); // dirty again
      await h.register("db0", 64 * R, {
        ownerHost: "h2",
        ownerUrl: "http://127.0.0.1:9002",
        ownerInstance: "i2",
        takeover: true,
      });
    });
    assert.deepEqual(events.map((e) => `${e.kind} ${e.volume}`), [
      "volume.registered db0",
      "volume.dirty db0",
      "volume.clean db0",
      "volume.dirty db0",
      "lease.takeover db0",
    ]);
    assert.equal(events[1].data?.dirtyRegions, 1);
    assert.equal(events[2].data?.dirtyRegions, 0);
    assert.equal(events[4].data?.previousInstance, "i1");
    assert.equal(events[4].data?.ownerInstance, "i2");
  } finally {
    await h.close();
  }
});
