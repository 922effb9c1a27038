/**
 * End-to-end scenarios of the mirroring core with real processes on loopback: the backup is killed
 * with SIGKILL, writes go on, reconstruct runs, and the SHA-256 of primary and secondary images
 * decide the outcome, never a component's own report.
 */
import assert from "node:assert/strict";
import { HostClient } from "../host/client.ts";
import { TrackerClient } from "../tracker/client.ts";
import { startSystem, type System } from "../harness/system.ts";
import { randomBytes, seededRandom } from "../src/random.ts";

const seed = Number(Deno.env.get("TRACKMIRROR_SEED") ?? Date.now() % 1_000_000);
const region = 64 * 1024;

async function withSystem(
  fn: (sys: System) => Promise<void>,
  opts?: Parameters<typeof startSystem>[0],
) {
  const sys = await startSystem(opts);
  try {
    await fn(sys);
  } catch (err) {
    console.error(
      `seed ${seed}\n--- host output ---\n${sys.host.output()}\n--- backup output ---\n${sys.backup.output()}`,
    );
    throw err;
  } finally {
    await sys.stop();
  }
}

/** Writes `count` random blocks at random (unaligned) offsets; returns the bytes written. */
async function randomWrites(sys: System, host: HostClient, rand: () => number, count: number) {
  let bytes = 0;
  for (let i = 0; i < count; i++) {
    const length = 1 + Math.floor(rand() * 100_000);
    const offset = Math.floor(rand() * (sys.sizeBytes - length));
    await host.write(sys.volume, offset, randomBytes(rand, length));
    bytes += length;
  }
  return bytes;
}

Deno.test("a) backup killed, writes tracked, reconstruct copies only marked regions, images equal", async () => {
  await withSystem(async (sys) => {
    const rand = seededRandom(seed);
    const host = new HostClient(sys.host.url);
    const tracker = new TrackerClient(sys.tracker.url);
    await sys.waitMirroring();
    await randomWrites(sys, host, rand, 40);
    await sys.backup.kill();
    await randomWrites(sys, host, rand, 25);
    const dirty = await tracker.getVolume(sys.volume);
    assert.ok(dirty.dirtyRegions > 0, "writes during the outage were tracked");
    assert.ok(dirty.dirtyBytes < sys.sizeBytes / 2, `dirty ${dirty.dirtyBytes} is not the volume`);

    await sys.restartBackup();
    await sys.waitMirroring();
    const { code, output } = await sys.reconstruct();
    assert.equal(code, 0, output);
    const copied = Number(/(\d+) bytes copied/.exec(output)?.[1]);
    assert.equal(copied, dirty.dirtyBytes, `copied exactly the marked regions\n${output}`);
    assert.equal((await tracker.getVolume(sys.volume)).dirtyRegions, 0);

    await sys.flushBackup();
    assert.equal(await sys.sha256Secondary(), await sys.sha256Primary());
  });
});

Deno.test("b) backup killed with batches in flight: no acknowledged write is missing", async () => {
  await withSystem(async (sys) => {
    const host = new HostClient(sys.host.url);
    await sys.waitMirroring();
    const workers = 8;
    const blockBytes = 64 * 1024;
    const slice = Math.floor(sys.sizeBytes / workers / blockBytes);
    /** The last acknowledged data of every block, by block index. */
    const acked = new Map<number, Uint8Array>();
    let stop = false;
    let writes = 0;
    const worker = async (w: number) => {
      const rand = seededRandom(seed + w);
      while (!stop) {
        const block = w * slice + Math.floor(rand() * slice);
        const data = randomBytes(rand, blockBytes);
        await host.write(sys.volume, block * blockBytes, data);
        acked.set(block, data);
        writes++;
      }
    };
    const running = Array.from({ length: workers }, (_, w) => worker(w));
    while (writes < 100) await new Promise((r) => setTimeout(r, 5));
    await sys.backup.kill();
    const atKill = writes;
    while (writes < atKill + 100) await new Promise((r) => setTimeout(r, 5));
    stop = true;
    await Promise.all(running);

    await sys.restartBackup();
    await sys.waitMirroring();
    const { code, output } = await sys.reconstruct();
    assert.equal(code, 0, output);
    await sys.flushBackup();
    const secondary = await Deno.readFile(sys.secondaryPath);
    for (const [block, data] of acked) {
      const got = secondary.subarray(block * blockBytes, (block + 1) * blockBytes);
      assert.deepEqual(got, data, `acknowledged block ${block} is in the secondary`);
    }
    assert.equal(await sys.sha256Secondary(), await sys.sha256Primary());
  });
});

Deno.test("c) backup and tracker both down: the write fails clearly and the primary is unchanged", async () => {
  await withSystem(async (sys) => {
    const host = new HostClient(sys.host.url);
    await sys.waitMirroring();
    await host.write(sys.volume, 0, new Uint8Array(4096).fill(1));
    await sys.backup.kill();
    await sys.tracker.kill();
    const before = await sys.sha256Primary();
    const res = await fetch(`${sys.host.url}/v1/volumes/${sys.volume}/data?offset=8192`, {
      method: "PUT",
      body: new Uint8Array(4096).fill(2),
    });
    assert.equal(res.status, 503);
    const body = await res.json();
    assert.match(body.error.message, /failed, primary untouched/);
    assert.match(body.error.message, /tracker/);
    assert.equal(await sys.sha256Primary(), before);
  });
});

Deno.test("d) writes to the same regions during a resync: images still converge", async () => {
  await withSystem(async (sys) => {
    const rand = seededRandom(seed + 99);
    const host = new HostClient(sys.host.url);
    await sys.waitMirroring();
    await sys.backup.kill();
    // Dirty the first 8 MiB, region by region, while the backup is down.
    for (let off = 0; off < 8 * 1024 * 1024; off += region) {
      await host.write(sys.volume, off + 100, randomBytes(rand, 1000));
    }
    await sys.restartBackup();
    await sys.waitMirroring();
    let stop = false;
    const writer = (async () => {
      let n = 0;
      while (!stop || n < 50) {
        const off = Math.floor(rand() * 128) * region + Math.floor(rand() * 1000);
        await host.write(sys.volume, off, randomBytes(rand, 1 + Math.floor(rand() * 70_000)));
        n++;
      }
      return n;
    })();
    const { code, output } = await sys.reconstruct();
    stop = true;
    const n = await writer;
    assert.equal(code, 0, output);
    assert.ok(n >= 50);
    await sys.flushBackup();
    assert.equal(await sys.sha256Secondary(), await sys.sha256Primary());
  }, { hostArgs: ["--resync-bytes-per-sec", "4MiB"] });
});

Deno.test("e) bad input is refused with a message naming the value, and nothing is written", async (t) => {
  await withSystem(async (sys) => {
    await sys.waitMirroring();
    const before = await sys.sha256Primary();
    const listing = async () => {
      const names: string[] = [];
      const walk = async (d: string) => {
        for await (const e of Deno.readDir(d)) {
          if (e.isDirectory) await walk(`${d}/${e.name}`);
          else if (!e.name.startsWith("tracker.kv") && !e.name.endsWith(".log")) {
            names.push(`${d}/${e.name}`);
          }
        }
      };
      await walk(sys.dir);
      return names.sort();
    };
    const filesBefore = await listing();
    const cases: { name: string; url: string; init?: RequestInit; status: number; says: RegExp }[] =
      [
        {
          name: "negative offset",
          url: `${sys.host.url}/v1/volumes/vol0/data?offset=-1`,
          init: { method: "PUT", body: "x" },
          status: 400,
          says: /"-1"/,
        },
        {
          name: "huge offset",
          url: `${sys.host.url}/v1/volumes/vol0/data?offset=99999999999999999999`,
          init: { method: "PUT", body: "x" },
          status: 400,
          says: /99999999999999999999/,
        },
        {
          name: "write past the end",
          url: `${sys.host.url}/v1/volumes/vol0/data?offset=${sys.sizeBytes - 2}`,
          init: { method: "PUT", body: "abcd" },
          status: 400,
          says: new RegExp(`${sys.sizeBytes - 2}\\+4 exceeds`),
        },
        {
          name: "empty write",
          url: `${sys.host.url}/v1/volumes/vol0/data?offset=0`,
          init: { method: "PUT", body: "" },
          status: 400,
          says: /Length 0/,
        },
        {
          name: "name with ../",
          url: `${sys.host.url}/v1/volumes/..%2Fx/data?offset=0`,
          init: { method: "PUT", body: "x" },
          status: 400,
          says: /"\.\.\/x"/,
        },
        {
          name: "name with a slash",
          url: `${sys.host.url}/v1/volumes/a%2Fb/data?offset=0`,
          init: { method: "PUT", body: "x" },
          status: 400,
          says: /"a\/b"/,
        },
        {
          name: "unknown volume",
          url: `${sys.host.url}/v1/volumes/nope/data?offset=0`,
          init: { method: "PUT", body: "x" },
          status: 404,
          says: /"nope"/,
        },
        {
          name: "oversized body",
          url: `${sys.host.url}/v1/volumes/vol0/data?offset=0`,
          init: { method: "PUT", body: new Uint8Array(33 * 1024 * 1024) },
          status: 413,
          says: /exceeds/,
        },
        {
          name: "tracker: malformed JSON",
          url: `${sys.tracker.url}/v1/track`,
          init: { method: "POST", body: "{nope", headers: { "content-type": "application/json" } },
          status: 400,
          says: /JSON/i,
        },
        {
          name: "tracker: negative extent",
          url: `${sys.tracker.url}/v1/track`,
          init: {
            method: "POST",
            body: JSON.stringify({
              volume: "vol0",
              host: "host0",
              extents: [{ offset: -5, length: 1 }],
            }),
            headers: { "content-type": "application/json" },
          },
          status: 400,
          says: /-5/,
        },
        {
          name: "tracker: volume ../x",
          url: `${sys.tracker.url}/v1/volumes/..%2Fx`,
          init: {
            method: "PUT",
            body: JSON.stringify({
              sizeBytes: 4096,
              ownerHost: "h",
              ownerUrl: "http://127.0.0.1:1",
            }),
            headers: { "content-type": "application/json" },
          },
          status: 400,
          says: /\.\.\/x/,
        },
        {
          name: "backup: volume ../x",
          url: `${sys.backup.url}/v1/volumes/..%2Fx`,
          init: {
            method: "PUT",
            body: JSON.stringify({ sizeBytes: 4096 }),
            headers: { "content-type": "application/json" },
          },
          status: 400,
          says: /\.\.\/x/,
        },
        {
          name: "backup: garbage batch",
          url: `${sys.backup.url}/v1/volumes/vol0/writes`,
          init: {
            method: "POST",
            body: new Uint8Array(100).fill(7),
            headers: { "content-type": "application/octet-stream" },
          },
          status: 400,
          says: /./,
        },
      ];
    for (const c of cases) {
      await t.step(c.name, async () => {
        const res = await fetch(c.url, c.init);
        const text = await res.text();
        assert.equal(res.status, c.status, text);
        assert.match(JSON.parse(text).error.message, c.says);
      });
    }
    assert.equal(await sys.sha256Primary(), before, "primary unchanged");
    assert.deepEqual(await listing(), filesBefore, "no file created");
    const tracker = new TrackerClient(sys.tracker.url);
    assert.equal((await tracker.getVolume("vol0")).dirtyRegions, 0, "nothing marked");
    assert.deepEqual((await tracker.listVolumes()).map((v) => v.name), ["vol0"]);
  });
});

Deno.test("f) reconstruct fails clearly while the backup is offline or the host agent is gone", async () => {
  await withSystem(async (sys) => {
    const host = new HostClient(sys.host.url);
    await sys.waitMirroring();
    await sys.backup.kill();
    await host.write(sys.volume, 0, new Uint8Array(4096).fill(5));
    const offline = await sys.reconstruct();
    assert.notEqual(offline.code, 0, offline.output);
    assert.match(offline.output, /backup is still offline/);
    await sys.host.kill();
    const gone = await sys.reconstruct();
    assert.notEqual(gone.code, 0, gone.output);
    assert.match(gone.output, /host agent "host0" at http:\/\/127\.0\.0\.1:\d+ is unreachable/);
    const tracker = new TrackerClient(sys.tracker.url);
    assert.ok((await tracker.getVolume(sys.volume)).dirtyRegions >= 1, "the mark is kept");
  });
});
