/**
 * `deno task status` against real processes (harness/system.ts): healthy and in sync; the backup
 * SIGKILLed and a write tracked (down, the dirty bytes shown); the backup back (degraded: dirty)
 * and repaired (healthy again); the tracker SIGKILLed (down, naming its URL). The JSON form is
 * compared with what the services' own APIs say.
 */
import assert from "node:assert/strict";
import { type RunResult, runScript } from "../harness/tools.ts";
import { startSystem, type System } from "../harness/system.ts";
import type { SystemStatus } from "../src/status/status_document.ts";

const mib = 1024 * 1024;
/** Bound on waiting for a state the system settles into (the backup's checkpoint is 1 s). */
const settleMsMax = 20_000;

function status(sys: System, args: string[] = []): Promise<RunResult> {
  return runScript("host/status/status.ts", ["--tracker", sys.tracker.url, ...args]);
}

async function statusJson(sys: System): Promise<{ code: number; doc: SystemStatus }> {
  const out = await status(sys, ["--json"]);
  return { code: out.code, doc: JSON.parse(out.stdout) as SystemStatus };
}

/** Runs status until it exits `code` (the system settles: a checkpoint, a probe); returns it. */
async function statusUntil(sys: System, code: number, args: string[] = []): Promise<RunResult> {
  const deadline = Date.now() + settleMsMax;
  let out: RunResult;
  do {
    out = await status(sys, args);
    if (out.code === code) return out;
    await new Promise((r) => setTimeout(r, 200));
  } while (Date.now() < deadline);
  throw new Error(`status never exited ${code}; last (${out.code}):\n${out.stdout}${out.stderr}`);
}

/**
 * Runs `status --watch 0.2` until it has printed `blocks` blocks, then SIGTERMs it; returns its
 * output and exit code (the last block's).
 */
async function watchBlocks(sys: System, blocks: number): Promise<{ code: number; text: string }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--quiet",
      "host/status/status.ts",
      "--tracker",
      sys.tracker.url,
      "--watch",
      "0.2",
    ],
    cwd: new URL("../", import.meta.url).pathname,
    stdout: "piped",
    stderr: "null",
    env: { NO_COLOR: "1" },
  }).spawn();
  let text = "";
  let signalled = false;
  const stop = () => {
    if (signalled) return;
    signalled = true;
    try {
      child.kill("SIGTERM");
    } catch { /* it has exited already: its code tells why */ }
  };
  try {
    // Read to the end (a block printed after the signal must not meet a closed pipe).
    const decoder = new TextDecoder();
    for await (const chunk of child.stdout) {
      text += decoder.decode(chunk, { stream: true });
      if ((text.match(/^trackmirror status at /gm) ?? []).length >= blocks) stop();
    }
  } finally {
    stop();
  }
  const { code } = await child.status;
  return { code, text };
}

async function write(sys: System, offset: number, bytes: number): Promise<void> {
  const body = crypto.getRandomValues(new Uint8Array(Math.min(bytes, 65536)));
  const data = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i += body.length) data.set(body.subarray(0, bytes - i), i);
  const res = await fetch(`${sys.host.url}/v1/volumes/vol0/data?offset=${offset}`, {
    method: "PUT",
    body: data,
  });
  await res.body?.cancel();
  assert.equal(res.status, 204, `write at ${offset} answered ${res.status}`);
}

async function getJson<T>(url: string): Promise<T> {
  const res = await fetch(url);
  assert.ok(res.ok, `${url} answered ${res.status}`);
  return await res.json() as T;
}

Deno.test("status follows the system from in sync through an outage and its repair", async () => {
  const sys = await startSystem({ sizeBytes: 64 * mib });
  try {
    await sys.waitMirroring();
    await write(sys, 0, mib);

    const healthy = await statusUntil(sys, 0);
    assert.match(healthy.stdout, /HEALTHY \(exit 0\)/);
    assert.match(healthy.stdout, /1\/1 volume\(s\) in sync/);
    assert.match(healthy.stdout, /^vol0 +host0 +mirroring +yes /m);

    // --watch repeats the block (plain blocks, not a terminal) until stopped; exit: the last one's.
    const watched = await watchBlocks(sys, 2);
    assert.equal(watched.code, 0, watched.text);
    assert.equal((watched.text.match(/HEALTHY \(exit 0\)/g) ?? []).length >= 2, true);

    // --json carries the numbers the services' own APIs give.
    const { code, doc } = await statusJson(sys);
    assert.equal(code, 0);
    assert.equal(doc.format, 1);
    assert.equal(doc.health, "healthy");
    const v = doc.volumes[0];
    const info = await getJson<{ dirtyBytes: number; sizeBytes: number }>(
      `${sys.tracker.url}/v1/volumes/vol0`,
    );
    const host = await getJson<{ mode: string; components: { backup: { url: string } } }>(
      `${sys.host.url}/v1/status`,
    );
    const backup = await getJson<{ lag: { volume: string; records: number }[] }>(
      `${sys.backup.url}/v1/status`,
    );
    assert.equal(v.inSync, true);
    assert.deepEqual(v.notInSync, []);
    assert.equal(v.sizeBytes, info.sizeBytes);
    assert.equal(v.dirty.bytes, info.dirtyBytes);
    assert.equal(v.mode, host.mode);
    assert.equal(v.backupUrl, sys.backup.url);
    assert.equal(host.components.backup.url, sys.backup.url);
    assert.equal(v.lag?.records, backup.lag.find((l) => l.volume === "vol0")?.records);
    assert.equal(doc.backups[0].url, sys.backup.url);
    assert.equal(doc.backups[0].state, "online");
    assert.equal(doc.hosts[0].id, "host0");

    // The backup dies; a write is tracked instead.
    await sys.backup.kill();
    await write(sys, 10 * mib, mib);
    const down = await status(sys);
    assert.equal(down.code, 3, down.stdout + down.stderr);
    assert.match(down.stdout, /DOWN \(exit 3\)/);
    assert.match(down.stdout, /^vol0 +host0 +tracking +no +1\.00 MiB \(16 r\)/m);
    assert.match(down.stdout, new RegExp(`backup ${sys.backup.url} does not answer`));
    const downDoc = (await statusJson(sys)).doc;
    const dirtyInfo = await getJson<{ dirtyBytes: number; dirtyRegions: number }>(
      `${sys.tracker.url}/v1/volumes/vol0`,
    );
    assert.equal(downDoc.volumes[0].dirty.bytes, dirtyInfo.dirtyBytes);
    assert.equal(downDoc.volumes[0].dirty.regions, dirtyInfo.dirtyRegions);
    assert.equal(downDoc.volumes[0].dirty.bytes, mib);
    assert.equal(downDoc.volumes[0].mode, "tracking");
    assert.equal(downDoc.hosts[0].backup?.state === "online", false);

    // The backup returns: serving and mirroring, but the marked regions wait for a resync.
    await sys.restartBackup();
    await sys.waitMirroring();
    const dirty = await statusUntil(sys, 1);
    assert.match(dirty.stdout, /DEGRADED \(exit 1\)/);
    assert.match(dirty.stdout, /the tracker holds 16 dirty region\(s\) \(1\.00 MiB\)/);

    const repaired = await sys.reconstruct();
    assert.equal(repaired.code, 0, repaired.output);
    await sys.flushBackup();
    const again = await statusUntil(sys, 0);
    assert.match(again.stdout, /1\/1 volume\(s\) in sync/);
    assert.equal(await sys.sha256Primary(), await sys.sha256Secondary());

    // The tracker dies: nothing can be found from it.
    await sys.tracker.kill();
    const noTracker = await status(sys);
    assert.equal(noTracker.code, 3);
    assert.match(noTracker.stdout, new RegExp(`tracker ${sys.tracker.url} does not answer`));
    const noTrackerDoc = (await statusJson(sys)).doc;
    assert.equal(noTrackerDoc.tracker.state, "offline");
    assert.equal(noTrackerDoc.health, "down");
  } finally {
    await sys.stop();
  }
});
