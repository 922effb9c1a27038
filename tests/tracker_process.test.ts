/**
 * The real tracker process on loopback, through the typed client: acknowledged marks survive a
 * SIGKILL, SIGTERM drains and exits 0, bad flags exit 2.
 */
import assert from "node:assert/strict";
import { ServiceCallError } from "../src/http_client.ts";
import { TrackerClient } from "../tracker/client.ts";
import { startService } from "../harness/service_process.ts";

const R = 4096;

Deno.test("acknowledged marks survive SIGKILL and a restart on the same KV", async () => {
  const dir = await Deno.makeTempDir();
  const kvPath = `${dir}/nested/tracker.kv`; // the parent directory does not exist yet
  let proc = await startService("tracker/main.ts", ["--kv", kvPath]);
  try {
    const client = new TrackerClient(proc.url);
    assert.equal(await client.healthz(), true);
    await client.registerVolume("db0", {
      sizeBytes: 4096 * R,
      regionBytes: R,
      ownerHost: "h1",
      ownerUrl: "http://127.0.0.1:9001",
    });
    const regions = Array.from({ length: 300 }, (_, i) => (i * 13) % 4096);
    const acks = await Promise.all(
      regions.map((r) =>
        client.track({ volume: "db0", host: "h1", extents: [{ offset: r * R + 5, length: 10 }] })
      ),
    );
    assert.equal(acks.length, regions.length);
    const before = await first(client.log("db0"));
    await proc.kill();
    assert.equal(await client.healthz(), false);
    await assert.rejects(
      client.track({ volume: "db0", host: "h1", extents: [{ offset: 0, length: 1 }] }),
      (err) => err instanceof ServiceCallError && err.status === 0 && err.offline,
    );

    proc = await startService("tracker/main.ts", ["--kv", kvPath]);
    const again = new TrackerClient(proc.url);
    const dirty = new Set<number>();
    for await (const page of again.log("db0", { limit: 7 })) {
      for (const e of page.extents) {
        for (let r = e.offset / R; r < (e.offset + e.length) / R; r++) dirty.add(r);
      }
    }
    assert.deepEqual([...dirty].sort((a, b) => a - b), [...new Set(regions)].sort((a, b) => a - b));
    const info = await again.getVolume("db0");
    assert.equal(info.dirtyRegions, new Set(regions).size);
    assert.equal(info.ownerHost, "h1");
    const after = await first(again.log("db0"));
    assert.ok(Number(after.token) >= Number(before.token), `${after.token} < ${before.token}`);
    assert.deepEqual((await again.listVolumes()).map((v) => v.name), ["db0"]);
    const missing = await again.getVolume("nope").catch((e) => e);
    assert.ok(missing instanceof ServiceCallError && missing.status === 404, String(missing));
  } finally {
    await proc.kill();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("SIGTERM drains and exits 0; the marks it acknowledged are kept", async () => {
  const dir = await Deno.makeTempDir();
  const kvPath = `${dir}/tracker.kv`;
  let proc = await startService("tracker/main.ts", ["--kv", kvPath]);
  try {
    const client = new TrackerClient(proc.url);
    await client.registerVolume("db0", {
      sizeBytes: 64 * R,
      regionBytes: R,
      ownerHost: "h1",
      ownerUrl: "http://127.0.0.1:9001",
    });
    await client.track({ volume: "db0", host: "h1", extents: [{ offset: 0, length: 3 * R }] });
    await proc.stop();
    assert.equal((await proc.child.status).code, 0, proc.output());
    proc = await startService("tracker/main.ts", ["--kv", kvPath]);
    assert.equal((await new TrackerClient(proc.url).getVolume("db0")).dirtyRegions, 3);
  } finally {
    await proc.kill();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("bad flags print the offending value and exit 2", async () => {
  const root = new URL("../", import.meta.url).pathname;
  for (const [args, named] of [[["--port", "http"], '"http"'], [["--nope"], "--nope"]] as const) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--quiet", `${root}tracker/main.ts`, ...args],
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 2, stderr);
    assert.ok(stderr.includes(named), stderr);
  }
});

async function first<T>(gen: AsyncGenerator<T>): Promise<T> {
  const { value, done } = await gen.next();
  await gen.return(undefined);
  assert.ok(!done);
  return value as T;
}
