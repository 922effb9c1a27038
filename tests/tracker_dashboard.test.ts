/**
 * The tracker's dashboard routes in-process (issue 11 item 5): the dirty map of a volume against
 * the regions the test marked (a model of its own, not the reader's), its bound on bitmap reads,
 * the overview document and its stream, and the page's files. The browser test is
 * dashboard_browser.test.ts.
 */
import assert from "node:assert/strict";
import { regionsPerSegment } from "../src/dirty_bitmap.ts";
import { mapCellsMax } from "../src/volume_map.ts";
import { mapSegmentsReadMax } from "../tracker/map_reader.ts";
import { trackerEventKinds } from "../tracker/tracker_events.ts";
import { startService } from "../harness/service_process.ts";
import { startSystem } from "../harness/system.ts";
import { regionBytesTest as R, trackerHarness } from "./support/tracker_harness.ts";

/** The map a volume of `regionCount` regions should show in `cells` cells. */
function expectedMap(
  regionCount: number,
  cells: number,
  dirty: Iterable<number>,
  active: Iterable<number> = [],
): string {
  const state = Array<string>(cells).fill(".");
  const cellOf = (r: number) => Math.floor(r * cells / regionCount);
  for (const r of active) state[cellOf(r)] = "A";
  for (const r of dirty) state[cellOf(r)] = "D";
  return state.join("");
}

Deno.test("the map shows marked regions dirty and activity-only regions active, cell by cell", async (t) => {
  const h = await trackerHarness();
  try {
    const regionCount = 2 * regionsPerSegment + 300; // three segments, the last one partial
    await h.register("v1", regionCount * R - 100); // the last region is partial too
    const dirty = [0, 5, 6, 1023, 1024, 2047, regionCount - 1];
    await h.track("v1", dirty.map((r) => ({ offset: r * R, length: 1 })));
    const active = [7, 1500, 5]; // 5 is dirty as well: dirty wins
    await h.active("v1", "h2", active);
    for (const cells of [regionCount, 256, 7, 1]) {
      await t.step(`${cells} cells`, async () => {
        const m = await h.ok("GET", `/v1/volumes/v1/map?cells=${cells}`);
        const want = expectedMap(regionCount, cells, dirty, active);
        assert.equal(m.map, want);
        assert.equal(m.cells, cells);
        assert.equal(m.regionCount, regionCount);
        assert.equal(m.dirtyRegions, dirty.length);
        assert.equal(m.activityRegions, active.length);
        assert.equal(m.dirtyCells, [...want].filter((c) => c === "D").length);
        assert.equal(m.activityCells, [...want].filter((c) => c === "A").length);
        assert.equal(m.exact, true);
      });
    }
    await t.step("more cells than regions: one cell a region", async () => {
      const m = await h.ok("GET", `/v1/volumes/v1/map?cells=${mapCellsMax}`);
      assert.equal(m.cells, Math.min(mapCellsMax, regionCount));
    });
    await t.step("a cleared region leaves the map", async () => {
      const { token } = (await h.logAll("v1"))[0];
      await h.ok("POST", "/v1/volumes/v1/clear", {
        token,
        extents: [{ offset: 1024 * R, length: R }],
      });
      const m = await h.ok("GET", `/v1/volumes/v1/map?cells=${regionCount}`);
      const left = dirty.filter((r) => r !== 1024);
      assert.equal(m.map, expectedMap(regionCount, regionCount, left, active));
    });
  } finally {
    await h.close();
  }
});

Deno.test("the map refuses bad cell counts and unknown volumes", async () => {
  const h = await trackerHarness();
  try {
    await h.register("v1", 64 * R);
    for (const q of ["cells=0", `cells=${mapCellsMax + 1}`, "cells=1.5", "cells=x"]) {
      const res = await h.req("GET", `/v1/volumes/v1/map?${q}`);
      assert.equal(res.status, 400, q);
      assert.match(JSON.stringify(res.json), /cells/);
    }
    assert.equal((await h.req("GET", "/v1/volumes/nope/map")).status, 404);
    assert.equal((await h.ok("GET", "/v1/volumes/v1/map")).cells, 64);
  } finally {
    await h.close();
  }
});

Deno.test("past its read bound the map draws the remaining dirty segments whole and says so", async () => {
  const h = await trackerHarness();
  try {
    const segments = mapSegmentsReadMax + 2;
    const regionCount = segments * regionsPerSegment;
    await h.register("big", regionCount * R);
    // One dirty region in each segment: region 3 of each; the last two segments lie past the bound.
    const dirty = Array.from({ length: segments }, (_, s) => s * regionsPerSegment + 3);
    await h.track("big", dirty.map((r) => ({ offset: r * R, length: 1 })));
    const m = await h.ok("GET", `/v1/volumes/big/map?cells=${segments * 4}`);
    assert.equal(m.exact, false);
    const read = dirty.slice(0, mapSegmentsReadMax);
    const want = expectedMap(regionCount, segments * 4, read).slice(0, mapSegmentsReadMax * 4) +
      "D".repeat(8); // each segment past the bound: all four of its cells
    assert.equal(m.map, want);
  } finally {
    await h.close();
  }
});

Deno.test("the overview is the status document with the tracker's own answer", async () => {
  const h = await trackerHarness();
  try {
    // Its owner does not answer: the document says so (down), with the tracker's numbers.
    await h.register("v1", 64 * R, { ownerUrl: "http://127.0.0.1:1" });
    await h.track("v1", [{ offset: 0, length: 3 * R }]);
    const doc = await h.ok("GET", "/v1/overview");
    assert.equal(doc.format, 1);
    assert.equal(doc.health, "down");
    assert.equal(doc.tracker.state, "online");
    assert.equal(doc.tracker.volumes, 1);
    assert.equal(doc.volumes[0].name, "v1");
    assert.equal(doc.volumes[0].dirty.regions, 3);
    assert.equal(doc.volumes[0].dirty.bytes, 3 * R);
    assert.equal(doc.volumes[0].inSync, false);
    assert.equal(doc.hosts[0].url, "http://127.0.0.1:1");
    assert.equal(doc.hosts[0].state, "offline");
  } finally {
    await h.close();
  }
});

Deno.test("the overview stream sends the document as SSE and ends when the tracker stops", async () => {
  const h = await trackerHarness();
  try {
    const res = await h.app.request("/v1/overview/stream");
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /text\/event-stream/);
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!text.includes("\n\n")) {
      const { value, done } = await reader.read();
      assert.ok(!done, "the stream ended before its first event");
      text += value;
    }
    assert.match(text, /^event: overview\ndata: \{/);
    const data = JSON.parse(/^data: (.*)$/m.exec(text)![1]);
    assert.equal(data.format, 1);
    assert.equal(data.health, "healthy");
    h.endStreams();
    for (;;) if ((await reader.read()).done) break; // ends: a graceful shutdown need not wait
  } finally {
    await h.close();
  }
});

Deno.test("the dashboard's page, script and style are served", async () => {
  const h = await trackerHarness();
  try {
    const page = await h.app.request("/");
    assert.match(page.headers.get("content-type") ?? "", /text\/html/);
    const html = await page.text();
    assert.match(html, /src="\/dashboard\/app\.js"/);
    assert.match(html, /href="\/dashboard\/style\.css"/);
    const js = await h.app.request("/dashboard/app.js");
    assert.match(js.headers.get("content-type") ?? "", /javascript/);
    assert.match(await js.text(), /\/v1\/overview\/stream/);
    const css = await h.app.request("/dashboard/style.css");
    assert.match(css.headers.get("content-type") ?? "", /text\/css/);
    await css.body?.cancel();
  } finally {
    await h.close();
  }
});

Deno.test("the page's EventSource listens to every kind the tracker's /v1/events carries", async () => {
  // app.js is browser code (it runs on import): its list is read from the file's text.
  const js = await Deno.readTextFile(new URL("../tracker/dashboard/app.js", import.meta.url));
  const list = /export const eventKinds = \[([^\]]*)\]/.exec(js);
  assert.ok(list, "app.js exports eventKinds");
  const kinds = [...list[1].matchAll(/"([^"]+)"/g)].map((m) => m[1]);
  assert.deepEqual([...kinds].sort(), [...trackerEventKinds].sort());
  assert.match(js, /subscribe\("\/v1\/events\?since=0", eventKinds,/);
});

/** Opens the SSE stream at `url` and reads until its first block (an event or the replay). */
async function openStream(url: string, first: RegExp) {
  const res = await fetch(url);
  assert.equal(res.status, 200, url);
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!first.test(text)) {
    const { value, done } = await reader.read();
    assert.ok(!done, `${url} ended before ${first}: ${text}`);
    text += value;
  }
  return reader;
}

/** Reads `reader` to its end (the server closed the stream). */
async function readToEnd(reader: ReadableStreamDefaultReader<string>): Promise<void> {
  for (;;) if ((await reader.read()).done) return;
}

Deno.test("SIGTERM ends open overview and event streams and the tracker still exits 0", async () => {
  const dir = await Deno.makeTempDir();
  const proc = await startService("tracker/main.ts", ["--kv", `${dir}/tracker.kv`]);
  try {
    const overview = await openStream(`${proc.url}/v1/overview/stream`, /^event: overview\n/);
    // since=0 replays the kept events at once: the tracker's "listening" log line at least.
    const events = await openStream(`${proc.url}/v1/events?since=0`, /event: log\n/);
    await proc.stop(); // SIGTERM; SIGKILL only if it did not exit within its grace
    assert.equal((await proc.child.status).code, 0, proc.output());
    await readToEnd(overview);
    await readToEnd(events);
  } finally {
    await proc.kill();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("SIGTERM stops a host agent with an event follower open, exit 0", async () => {
  const sys = await startSystem({ sizeBytes: 4 * 1024 * 1024 });
  try {
    await sys.waitMirroring();
    const events = await openStream(`${sys.host.url}/v1/events?since=0`, /event: mode\.change\n/);
    await sys.host.stop(); // SIGTERM; SIGKILL only if it did not exit within its grace
    assert.equal((await sys.host.child.status).code, 0, sys.host.output());
    await readToEnd(events);
  } finally {
    await sys.stop();
  }
});

Deno.test("the overview needs the token and asks the owners with it; the page does not", async () => {
  const seen: Array<string | null> = [];
  const owner = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    seen.push(req.headers.get("authorization"));
    return Response.json({ error: { status: 401, message: "no" } }, { status: 401 });
  });
  const h = await trackerHarness({ token: "s3cret" });
  try {
    const auth = { authorization: "Bearer s3cret" };
    const reg = await h.app.request("/v1/volumes/v1", {
      method: "PUT",
      headers: { ...auth, "content-type": "application/json" },
      body: JSON.stringify({
        sizeBytes: 64 * R,
        regionBytes: R,
        ownerHost: "h1",
        ownerUrl: `http://127.0.0.1:${owner.addr.port}`,
      }),
    });
    assert.equal(reg.status, 200);
    assert.equal((await h.app.request("/v1/overview")).status, 401);
    // The page's files hold no data: served without the token (the page then asks for it).
    const page = await h.app.request("/");
    assert.equal(page.status, 200);
    await page.body?.cancel();
    const doc = await (await h.app.request("/v1/overview", { headers: auth })).json();
    assert.deepEqual(seen, ["Bearer s3cret"]);
    assert.match(doc.hosts[0].error, /401/);
  } finally {
    await h.close();
    await owner.shutdown();
  }
});
