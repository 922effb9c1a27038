/**
 * The dashboard end to end in a real headless Chromium (issue 11 item 5): tracker, backup and host
 * agent as real processes (harness/system.ts), Debian's `chromium` driven by playwright-core (never
 * a downloaded browser). The page must show what `/v1/overview` and the map route say; after the
 * backup is SIGKILLed and the host writes, the volume must turn to tracking and its strip must show
 * dirty exactly the regions the tracker's log lists (every written one among them), and the events
 * panel must show the tracker's events (the registration replayed, the volume turning dirty
 * live). A screenshot is kept in a temp dir (path printed).
 *
 * Without a Chromium this test fails, naming what to install: CI (.ci/run) installs it.
 */
import assert from "node:assert/strict";
import { startSystem } from "../harness/system.ts";
import type { LogPage } from "../src/schemas.ts";
import type { SystemStatus } from "../src/status/status_document.ts";
import type { VolumeMap } from "../src/volume_map.ts";
import { HostClient } from "../host/client.ts";
import { BrowserDriver, requireChromium } from "./support/browser_driver.ts";

/** Bound on waiting for the page or the system to reach a state (the page updates once a second). */
const settleMsMax = 20_000;
const regionBytes = 64 * 1024;
/** 64 regions: the strip has one cell a region, so dirty cells count dirty regions. */
const sizeBytes = 64 * regionBytes;
/** Regions the test writes while the backup is down. */
const written = [0, 5, 6, 20, 63];

async function getJson<T>(url: string, headers: HeadersInit = {}): Promise<T> {
  const res = await fetch(url, { headers });
  assert.equal(res.status, 200, `GET ${url}`);
  return await res.json() as T;
}

/** Polls `probe` until it returns a value (not undefined); fails naming `what` past the bound. */
async function until<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  seen: () => string = () => "",
): Promise<T> {
  const deadline = Date.now() + settleMsMax;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(
    `${what}: not within ${settleMsMax} ms${last ? ` (last error: ${last})` : ""}; ${seen()}`,
  );
}

/** The volume's dirty regions as the tracker's log lists them (one page: a small volume). */
async function loggedRegions(trackerUrl: string, volume: string): Promise<number[]> {
  const page = await getJson<LogPage>(`${trackerUrl}/v1/volumes/${volume}/log`);
  assert.equal(page.nextCursor, null);
  return page.extents.flatMap((e) =>
    Array.from({ length: e.length / regionBytes }, (_, i) => e.offset / regionBytes + i)
  );
}

/** What the page shows of a volume: its fields as text and its strip's cells. */
interface Shown {
  health: string;
  mode: string;
  sync: string;
  dirtyRegions: string;
  dirtyBytes: string;
  lag: string;
  strip: string;
}

/**
 * Reads the page in the browser: its own script text (the test's type check has no DOM types),
 * a function of the volume's name returning `Shown` or null.
 */
const readPage = `(name) => {
  const card = document.querySelector('article.volume[data-volume="' + name + '"]');
  if (!card) return null;
  const field = (f) => card.querySelector('[data-field="' + f + '"]');
  const cells = [...field("strip").children];
  return {
    health: document.getElementById("health").dataset.health ?? "",
    mode: field("mode").textContent,
    sync: field("sync").dataset.sync ?? "",
    dirtyRegions: field("dirty-regions").textContent,
    dirtyBytes: field("dirty-bytes").dataset.bytes ?? "",
    lag: field("lag").textContent,
    strip: cells.map((c) =>
      c.classList.contains("dirty") ? "D" : c.classList.contains("activity") ? "A" : "."
    ).join(""),
  };
}`;

/** The events panel's items as "kind volume" (browser code, like `readPage`). */
const shownEventKinds = `[...document.querySelectorAll("#events li")].map((li) =>
  li.dataset.kind + " " + li.dataset.volume
)`;

/** Reads the SSE stream at `url` until its text matches `want`, then hangs up; the text read. */
async function streamUntil(url: string, want: RegExp): Promise<string> {
  const res = await fetch(url);
  assert.equal(res.status, 200, `GET ${url}`);
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  try {
    while (!want.test(text)) {
      const { value, done } = await reader.read();
      assert.ok(!done, `${url} ended before ${want}: ${text}`);
      text += value;
    }
  } finally {
    await reader.cancel();
  }
  return text;
}

function shown(page: BrowserDriver, volume: string): Promise<Shown | null> {
  return page.eval<Shown | null>(`(${readPage})(${JSON.stringify(volume)})`);
}

/** Waits until the page and the API agree on the volume, both read after `accept` holds. */
async function agreed(
  page: BrowserDriver,
  trackerUrl: string,
  volume: string,
  accept: (doc: SystemStatus, map: VolumeMap) => boolean,
  headers: HeadersInit = {},
): Promise<{ doc: SystemStatus; map: VolumeMap; page: Shown }> {
  let seen = "nothing yet";
  return await until(`the page to show what /v1/overview says of ${volume}`, async () => {
    const doc = await getJson<SystemStatus>(`${trackerUrl}/v1/overview`, headers);
    const map = await getJson<VolumeMap>(
      `${trackerUrl}/v1/volumes/${volume}/map?cells=256`,
      headers,
    );
    const v = doc.volumes.find((x) => x.name === volume);
    seen = `API: ${doc.health}, ${v?.mode}, ${v?.dirty.regions} dirty, map ${map.map}`;
    if (!v || !accept(doc, map)) return undefined;
    const s = await shown(page, volume);
    seen += `; page: ${JSON.stringify(s)}`;
    const same = s !== null && s.health === doc.health && s.mode === v.mode &&
      s.sync === (v.inSync ? "yes" : "no") && s.dirtyRegions === String(v.dirty.regions) &&
      s.dirtyBytes === String(v.dirty.bytes) && s.strip === map.map;
    return same ? { doc, map, page: s } : undefined;
  }, () => seen);
}

Deno.test("the dashboard shows the API's numbers and a backup outage fills the volume's dirty strip", async () => {
  const executablePath = await requireChromium();
  const sys = await startSystem({ sizeBytes });
  const shots = await Deno.makeTempDir({ prefix: "trackmirror-dashboard-" });
  const page = BrowserDriver.start(executablePath);
  try {
    await sys.waitMirroring();
    await page.open(`${sys.tracker.url}/`);

    // Before the outage: mirroring, nothing dirty, the page agreeing with the API.
    const before = await agreed(
      page,
      sys.tracker.url,
      sys.volume,
      (doc) => doc.volumes[0]?.mode === "mirroring",
    );
    assert.equal(before.map.cells, sizeBytes / regionBytes);
    assert.equal(before.page.strip, ".".repeat(before.map.cells));
    assert.equal(before.doc.volumes[0].dirty.regions, 0);

    // The events panel: shown, starting with what the tracker keeps (the volume's registration).
    await until("the events panel to show the volume's registration", async () => {
      const kinds = await page.eval<string[]>(shownEventKinds);
      return kinds.includes(`volume.registered ${sys.volume}`) ? true : undefined;
    }, () => "");
    assert.equal(await page.eval<boolean>(`document.getElementById("events-panel").hidden`), false);

    // The outage: the backup SIGKILLed, then writes through the host agent are tracked.
    await sys.backup.kill();
    const host = new HostClient(sys.host.url);
    for (const r of written) {
      await host.write(sys.volume, r * regionBytes + 512, new Uint8Array(4096).fill(r + 1));
    }
    // The host may mark more than it wrote (its activity record predicts the regions ahead of
    // a write, and they turn dirty when the backup is lost), never less.
    const after = await agreed(
      page,
      sys.tracker.url,
      sys.volume,
      (doc, map) => doc.volumes[0]?.mode === "tracking" && written.every((r) => map.map[r] === "D"),
    );
    const v = after.doc.volumes[0];
    assert.equal(after.page.mode, "tracking");
    assert.equal(after.page.sync, "no");
    // The strip's dirty cells, counted on the page, are the tracker's dirty regions as its log
    // lists them (one cell a region), and include every region written.
    const dirtyCells = [...after.page.strip].flatMap((c, i) => c === "D" ? [i] : []);
    const logged = await loggedRegions(sys.tracker.url, sys.volume);
    assert.deepEqual(dirtyCells, logged);
    assert.equal(dirtyCells.length, v.dirty.regions);
    assert.equal(dirtyCells.length, after.map.dirtyCells);
    assert.ok(
      written.every((r) => dirtyCells.includes(r)),
      `written ${written} in ${dirtyCells}`,
    );
    assert.equal(v.dirty.bytes, v.dirty.regions * regionBytes);
    assert.equal(after.page.lag, "unknown"); // the backup does not answer
    // The tracker's volume.dirty (the first mark after clean) reaches the panel live, as on
    // the tracker's own stream.
    await streamUntil(`${sys.tracker.url}/v1/events?since=0`, /event: volume\.dirty\n/);
    await until("the events panel to show the volume turning dirty", async () => {
      const kinds = await page.eval<string[]>(shownEventKinds);
      return kinds.includes(`volume.dirty ${sys.volume}`) ? true : undefined;
    }, () => "");
    assert.deepEqual(await page.pageErrors(), []);

    const shot = `${shots}/dashboard-outage.png`;
    await page.screenshot(shot);
    const png = await Deno.readFile(shot);
    assert.deepEqual([...png.subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47], "a PNG was saved");
    console.log(`dashboard screenshot: ${shot}`);
  } finally {
    await page.close();
    await sys.stop();
  }
});

Deno.test("with a token the page asks for it, then shows the system; the token leaves the URL", async () => {
  const executablePath = await requireChromium();
  const token = "tm s3cret/%?#x";
  const auth = { authorization: `Bearer ${token}` };
  const sys = await startSystem({ sizeBytes, env: { TRACKMIRROR_TOKEN: token } });
  const page = BrowserDriver.start(executablePath);
  try {
    await until("the host to mirror", async () => {
      const status = await getJson<{ mode: string }>(`${sys.host.url}/v1/status`, auth);
      return status.mode === "mirroring" ? true : undefined;
    });
    await page.open(`${sys.tracker.url}/`);
    await until(
      "the token form",
      async () =>
        await page.eval<boolean>(`!document.getElementById("token-form").hidden`) || undefined,
    );

    await page.open(`${sys.tracker.url}/#token=${encodeURIComponent(token)}`);
    const shown = await agreed(
      page,
      sys.tracker.url,
      sys.volume,
      (doc) => doc.volumes[0]?.mode === "mirroring",
      auth,
    );
    assert.equal(shown.page.strip.length, sizeBytes / regionBytes);
    assert.equal(await page.eval<string>("location.href"), `${sys.tracker.url}/`);
    assert.equal(await page.eval<boolean>(`document.getElementById("token-form").hidden`), true);
    assert.deepEqual(await page.pageErrors(), []);
  } finally {
    await page.close();
    await sys.stop();
  }
});
