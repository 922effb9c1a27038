/**
 * NBD block status against the whole system as real processes, with real clients: while the backup
 * is down, `nbdinfo --map=trackmirror:dirty` shows exactly the regions the tracker's own log holds
 * (and covers every byte written); the README's pull-mode loop, run as written, turns a copy of the
 * secondary into a copy of the primary (SHA-256); after reconstruct the map is clean. A test is
 * skipped, with a warning, only when one of its tools is not installed.
 */
import assert from "node:assert/strict";
import { HostClient } from "../host/client.ts";
import { TrackerClient } from "../tracker/client.ts";
import { startSystem, type System } from "../harness/system.ts";
import { freePort } from "../harness/service_process.ts";
import { serveNbd } from "../host/nbd/server.ts";
import { MemoryDevice } from "./support/memory_device.ts";
import { installed, run, runChecked, sha256File } from "../harness/tools.ts";
import { type Extent, mergeExtents } from "../src/extent.ts";
import { randomBytes, seededRandom } from "../src/random.ts";

const tools = ["nbdinfo", "qemu-img", "jq", "bash"] as const;
const missing = [];
for (const t of tools) if (!(await installed(t))) missing.push(t);
if (missing.length > 0) {
  console.warn(
    `nbd_block_status_system: ${missing.join(", ")} not installed; its tests are SKIPPED`,
  );
}

const KiB = 1024;
const MiB = 1024 * KiB;
const seed = Number(Deno.env.get("TRACKMIRROR_SEED") ?? Date.now() % 1_000_000);

/** One entry of `nbdinfo --map --json`. */
interface MapEntry {
  offset: number;
  length: number;
  type: number;
}

async function nbdMap(uri: string, context?: string): Promise<MapEntry[]> {
  const flag = context ? `--map=${context}` : "--map";
  return JSON.parse(await runChecked("nbdinfo", [flag, "--json", uri]));
}

/** The extents of `entries` whose type is `type`, merged. */
const ofType = (entries: MapEntry[], type: number): Extent[] =>
  mergeExtents(entries.filter((e) => e.type === type));

/** Every dirty extent in the tracker's own log of `volume`, merged. */
async function trackerDirty(tracker: TrackerClient, volume: string): Promise<Extent[]> {
  const all: Extent[] = [];
  for await (const page of tracker.log(volume)) {
    all.push(...page.extents.map((e) => ({ offset: e.offset, length: e.length })));
  }
  return mergeExtents(all);
}

/** The README's pull-mode block, between its markers, exactly as written there. */
async function readmePullModeBlock(): Promise<string> {
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  const m = /<!-- pull-mode-copy:begin -->\n```sh\n([\s\S]*?)```\n<!-- pull-mode-copy:end -->/
    .exec(readme);
  assert.ok(m, "README.md has the pull-mode block between its markers");
  return m[1];
}

/** True when every byte of `inner` lies inside one of `outer`. */
const covered = (inner: Extent, outer: Extent[]) =>
  outer.some((o) => o.offset <= inner.offset && inner.offset + inner.length <= o.offset + o.length);

async function withSystem(fn: (sys: System) => Promise<void>) {
  const sys = await startSystem({ sizeBytes: 16 * MiB });
  try {
    await fn(sys);
  } catch (err) {
    console.error(`seed ${seed}\n--- host output ---\n${sys.host.output()}`);
    throw err;
  } finally {
    await sys.stop();
  }
}

Deno.test({
  name: "trackmirror:dirty shows the tracker's record; the README's pull-mode loop copies it",
  ignore: missing.length > 0,
  async fn() {
    await withSystem(async (sys) => {
      const rand = seededRandom(seed);
      const host = new HostClient(sys.host.url);
      const tracker = new TrackerClient(sys.tracker.url);
      await sys.waitMirroring();
      await host.write(sys.volume, 0, randomBytes(rand, 2 * MiB)); // mirrored
      await sys.flushBackup();
      assert.deepEqual(ofType(await nbdMap(sys.nbdUri, "trackmirror:dirty"), 1), []);

      await sys.backup.kill();
      // The copy a pull-mode backup starts from: the secondary as the backup left it.
      const copy = `${sys.dir}/copy.img`;
      await Deno.copyFile(sys.secondaryPath, copy);
      const written: Extent[] = [
        { offset: 1 * MiB + 1000, length: 100_000 },
        { offset: 5 * MiB, length: 4096 },
        { offset: 10 * MiB + 3 * 65536 + 17, length: 200_000 },
        { offset: 16 * MiB - 5000, length: 5000 },
      ];
      for (const w of written) await host.write(sys.volume, w.offset, randomBytes(rand, w.length));

      const record = await trackerDirty(tracker, sys.volume);
      const map = await nbdMap(sys.nbdUri, "trackmirror:dirty");
      assert.deepEqual(ofType(map, 1), record, "the map is the tracker's record");
      assert.ok(record.length > 0);
      for (const w of written) assert.ok(covered(w, record), `write ${w.offset}+${w.length}`);
      assert.deepEqual(
        mergeExtents(map),
        [{ offset: 0, length: sys.sizeBytes }],
        "the map covers the volume once",
      );

      // QEMU's pull-mode view of a dirty context: dirty extents are not "data" (bit 0 = hole).
      const port = new URL(sys.nbdUri.replace(/^nbd:/, "http:")).port;
      const qemuMap: { start: number; length: number; data: boolean }[] = JSON.parse(
        await runChecked("qemu-img", [
          "map",
          "--output=json",
          "--image-opts",
          `driver=nbd,host=127.0.0.1,port=${port},export=${sys.volume},` +
          "x-dirty-bitmap=trackmirror:dirty",
        ]),
      );
      assert.deepEqual(
        mergeExtents(
          qemuMap.filter((e) => !e.data).map((e) => ({ offset: e.start, length: e.length })),
        ),
        record,
      );

      // base:allocation on the same primary: the untouched stretch reads as zeroes.
      const allocation = await nbdMap(sys.nbdUri);
      assert.ok(covered({ offset: 6 * MiB, length: 4 * MiB }, ofType(allocation, 2)));
      assert.ok(covered(written[1], ofType(allocation, 0)), "written data is data");

      const out = await run("bash", ["-c", await readmePullModeBlock()], {
        env: { NBD_HOST: "127.0.0.1", NBD_PORT: port, EXPORT: sys.volume, COPY: copy },
      });
      assert.equal(out.code, 0, out.stdout + out.stderr);
      assert.notEqual(await sha256File(sys.secondaryPath), await sys.sha256Primary());
      assert.equal(await sha256File(copy), await sys.sha256Primary(), "the copy is the primary");

      await sys.restartBackup();
      await sys.waitMirroring();
      const { code, output } = await sys.reconstruct();
      assert.equal(code, 0, output);
      assert.deepEqual(await trackerDirty(tracker, sys.volume), []);
      const after = await nbdMap(sys.nbdUri, "trackmirror:dirty");
      assert.deepEqual(after.map((e) => [e.offset, e.length, e.type]), [[0, sys.sizeBytes, 0]]);
    });
  },
});

Deno.test({
  name: "with a token, nbdinfo maps both contexts of VOLUME/TOKEN and none without it",
  ignore: missing.length > 0,
  async fn() {
    const token = "s3cret-9";
    const dirty = [{ offset: 64 * KiB, length: 64 * KiB }];
    const server = serveNbd({
      lookup: (name) =>
        name === "vol0" ? new MemoryDevice(MiB, (b) => b.fill(1, 0, 4096)) : undefined,
      listExports: () => ["vol0"],
      dirtySource: () => ({ dirtyExtents: () => Promise.resolve(dirty) }),
      token,
      port: freePort(),
      log: () => {},
    });
    try {
      const uri = `nbd://127.0.0.1:${server.port}/vol0/${token}`;
      assert.deepEqual(ofType(await nbdMap(uri, "trackmirror:dirty"), 1), dirty);
      assert.deepEqual(ofType(await nbdMap(uri), 2), [{ offset: 4096, length: MiB - 4096 }]);
      const refused = await run("nbdinfo", [
        "--map=trackmirror:dirty",
        `nbd://127.0.0.1:${server.port}/vol0`,
      ]);
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, /policy/);
    } finally {
      await server.close();
    }
  },
});
