/**
 * Real, independent NBD clients (qemu-io, nbdcopy, nbdsh, and ext4 in the kernel through nbdfuse
 * and a loop device) write through the host agent's fork layer to a trackmirror volume while the
 * backup is killed with SIGKILL part-way. The outcome is judged from outside: SHA-256 of a model
 * image the test computed itself, of the primary and of the secondary, e2fsck of the secondary and
 * the files read back from it. A test is skipped, with a warning, only when its tools are missing.
 */
import { kernelFsUnavailable } from "./support/kernel_fs.ts";
import assert from "node:assert/strict";
import { TrackerClient } from "../tracker/client.ts";
import { HostClient } from "../host/client.ts";
import { startSystem, type System } from "../harness/system.ts";
import { randomBytes, seededRandom } from "../src/random.ts";
import { installed, run, runChecked, sha256 } from "../harness/tools.ts";
import { CleanupStack, ScriptProcess } from "./support/nbd_integration_tools.ts";

const seed = Number(Deno.env.get("TRACKMIRROR_SEED") ?? Date.now() % 1_000_000);
const MiB = 1024 * 1024;
const region = 64 * 1024;

const tools = ["qemu-io", "nbdsh", "nbdcopy"] as const;
const have = Object.fromEntries(await Promise.all(tools.map(async (t) => [t, await installed(t)])));
for (const t of tools) {
  if (!have[t]) console.warn(`nbd_integration: ${t} is not installed; its tests are SKIPPED`);
}

async function withSystem(
  fn: (sys: System) => Promise<void>,
  opts?: Parameters<typeof startSystem>[0],
) {
  const sys = await startSystem(opts);
  try {
    await fn(sys);
  } catch (err) {
    console.error(
      `seed ${seed} (replay with TRACKMIRROR_SEED=${seed})\n--- host output ---\n` +
        `${sys.host.output()}\n--- backup output ---\n${sys.backup.output()}`,
    );
    throw err;
  } finally {
    await sys.stop();
  }
}

/** Asserts `got` equals `want`, naming the first differing offset (no 16 MiB diff printout). */
function assertSameBytes(got: Uint8Array, want: Uint8Array, what: string, base = 0) {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < got.length; i++) {
    if (got[i] !== want[i]) {
      assert.fail(`${what}: byte at ${base + i} is ${got[i]}, expected ${want[i]}`);
    }
  }
}

/** The outage left marks at the tracker; unless `whole`, not over the whole volume. */
async function assertTracked(sys: System, whole = false): Promise<number> {
  const info = await new TrackerClient(sys.tracker.url).getVolume(sys.volume);
  assert.ok(info.dirtyRegions > 0, "writes during the outage were tracked");
  if (whole) assert.equal(info.dirtyBytes, sys.sizeBytes, "both clients rewrote everything");
  else assert.ok(info.dirtyBytes < sys.sizeBytes, `dirty ${info.dirtyBytes} is not everything`);
  return info.dirtyBytes;
}

/** Restarts the backup, proves the secondary lacks the outage, reconstructs, flushes. */
async function repair(sys: System): Promise<string> {
  await sys.restartBackup();
  await sys.waitMirroring();
  await sys.flushBackup();
  assert.notEqual(
    await sys.sha256Secondary(),
    await sys.sha256Primary(),
    "before reconstruct the secondary lacks the outage's writes (else this test proves nothing)",
  );
  const { code, output } = await sys.reconstruct();
  assert.equal(code, 0, output);
  assert.equal((await new TrackerClient(sys.tracker.url).getVolume(sys.volume)).dirtyRegions, 0);
  await sys.flushBackup();
  return output;
}

Deno.test({
  name: "qemu-io writes patterns at unaligned offsets through NBD; the secondary holds them",
  ignore: !have["qemu-io"],
  async fn() {
    await withSystem(async (sys) => {
      const size = sys.sizeBytes;
      // [pattern, offset, length]; pattern -1 is WRITE_ZEROES. Later writes overlap earlier ones.
      const writes: [number, number, number][] = [
        [0x5a, 1000, 12345],
        [0xa5, region - 3, 70_001], // across two region boundaries
        [0x3c, 5 * MiB + 17, MiB + 333],
        [0x77, 6000, 100], // inside the first
        [-1, 5 * MiB + 100_000, 4097], // zeroes inside the third
        [0x11, size - 777, 777], // up to the last byte
      ];
      const expected = new Uint8Array(size);
      for (const [p, off, len] of writes) expected.fill(Math.max(p, 0), off, off + len);
      const args = ["-f", "raw"];
      for (const [p, off, len] of writes) {
        args.push("-c", p < 0 ? `write -z ${off} ${len}` : `write -P ${p} ${off} ${len}`);
      }
      // Read every written range back, run by run of equal bytes of the final image.
      for (const [, off, len] of writes) {
        for (let at = off; at < off + len;) {
          let end = at + 1;
          while (end < off + len && expected[end] === expected[at]) end++;
          args.push("-c", `read -P ${expected[at]} ${at} ${end - at}`);
          at = end;
        }
      }
      args.push("-c", "flush", sys.nbdUri);
      await sys.waitMirroring();
      const out = await runChecked("qemu-io", args);
      assert.doesNotMatch(out, /fail|error/i, out);

      const want = await sha256(expected);
      assert.equal(await sys.sha256Primary(), want, "primary holds the written patterns");
      const status = await new HostClient(sys.host.url).status();
      const counters = status.volumes[0]?.writes;
      assert.ok(counters, "the host forks writes");
      assert.ok(counters.viaBackup >= writes.length, JSON.stringify(counters));
      assert.equal(counters.viaTracker, 0, JSON.stringify(counters));
      await sys.flushBackup();
      assert.equal(await sys.sha256Secondary(), want, "secondary holds the same bytes");
    }, { sizeBytes: 16 * MiB });
  },
});

Deno.test({
  name:
    "nbdcopy fills 64 MiB, backup SIGKILLed, nbdsh writes go on: model, primary, secondary equal",
  ignore: !have.nbdcopy || !have.nbdsh,
  async fn() {
    await withSystem(async (sys) => {
      const size = sys.sizeBytes;
      const rand = seededRandom(seed);
      const model = randomBytes(rand, size); // random: nbdcopy skips holes and zeroes
      const source = `${sys.dir}/source.img`;
      await Deno.writeFile(source, model);
      await sys.waitMirroring();
      await runChecked("nbdcopy", ["--flush", source, sys.nbdUri]);
      await sys.flushBackup();
      assert.equal(await sys.sha256Secondary(), await sha256(model), "the copy was mirrored");

      // 200 seeded writes, applied to the model here and sent by nbdsh on one connection; the
      // backup dies after the first `killAfter` and the same connection goes on writing.
      const count = 200;
      const killAfter = 50;
      const ops: [number, number][] = [];
      const blobs: Uint8Array[] = [];
      for (let i = 0; i < count; i++) {
        const length = 1 + Math.floor(rand() * 100_000);
        const offset = Math.floor(rand() * (size - length + 1));
        const data = randomBytes(rand, length);
        model.set(data, offset);
        ops.push([offset, length]);
        blobs.push(data);
      }
      const opsPath = `${sys.dir}/ops.bin`;
      const blob = new Uint8Array(blobs.reduce((n, b) => n + b.length, 0));
      blobs.reduce((at, b) => (blob.set(b, at), at + b.length), 0);
      await Deno.writeFile(opsPath, blob);
      const client = ScriptProcess.nbdsh(
        "nbdsh",
        `
import sys
ops = ${JSON.stringify(ops)}
data = open(${JSON.stringify(opsPath)}, "rb").read()
h.connect_uri(${JSON.stringify(sys.nbdUri)})
at = 0
for i, (off, n) in enumerate(ops):
    if i == ${killAfter}:
        print("paused", flush=True)
        sys.stdin.readline()
    h.pwrite(data[at:at + n], off)
    at += n
h.flush()
h.shutdown()
print("done", flush=True)
`,
      );
      try {
        await client.waitLine(/^paused$/);
        await sys.backup.kill();
        await client.send("go");
        await client.done();
      } finally {
        await client.kill();
      }
      const want = await sha256(model);
      assert.equal(await sys.sha256Primary(), want, "primary holds the model");
      const dirtyBytes = await assertTracked(sys);

      const output = await repair(sys);
      const copied = Number(/(\d+) bytes copied/.exec(output)?.[1]);
      assert.equal(copied, dirtyBytes, `reconstruct copied exactly the marked regions\n${output}`);
      assert.equal(await sys.sha256Primary(), want, "primary holds the model");
      assert.equal(await sys.sha256Secondary(), want, "secondary holds the model");
    });
  },
});

/**
 * A client looping over [lo, hi) in chunks, 8 writes in flight, until `stopPath` exists; pass p
 * writes chunk i with the byte `(base + 31p + 7i) & 255`, so every pass differs from the last.
 * Prints "pass P" after each pass and "final P" at the end.
 */
function passClient(uri: string, stopPath: string, base: number, lo: number, hi: number) {
  return `
import os
h.connect_uri(${JSON.stringify(uri)})
lo, hi, chunk, base = ${lo}, ${hi}, ${chunk}, ${base}
p = 0
while True:
    cookies = []
    for i, off in enumerate(range(lo, hi, chunk)):
        n = min(chunk, hi - off)
        cookies.append(h.aio_pwrite(bytes([(base + p * 31 + i * 7) & 255]) * n, off))
        while h.aio_in_flight() >= 8:
            h.poll(-1)
    while h.aio_in_flight() > 0:
        h.poll(-1)
    for c in cookies:
        assert h.aio_command_completed(c)  # raises if the server answered an error
    print("pass", p, flush=True)
    if os.path.exists(${JSON.stringify(stopPath)}):
        break
    p += 1
h.flush()
h.shutdown()
print("final", p, flush=True)
`;
}
const chunk = 100_003;

/** What passClient's pass `p` leaves in [lo, hi). */
function passImage(image: Uint8Array, base: number, p: number, lo: number, hi: number) {
  for (let i = 0, off = lo; off < hi; i++, off += chunk) {
    image.fill((base + p * 31 + i * 7) & 255, off, Math.min(off + chunk, hi));
  }
}

Deno.test({
  name: "two nbdsh clients on two connections write disjoint ranges while the backup is SIGKILLed",
  ignore: !have.nbdsh,
  async fn() {
    await withSystem(async (sys) => {
      const size = sys.sizeBytes;
      const boundary = size / 2 + 4097; // unaligned, inside a region
      const stopPath = `${sys.dir}/stop`;
      const ranges = [
        { name: "client A", base: 0x10, lo: 0, hi: boundary },
        { name: "client B", base: 0x90, lo: boundary, hi: size },
      ];
      await sys.waitMirroring();
      const clients = ranges.map((r) =>
        ScriptProcess.nbdsh(r.name, passClient(sys.nbdUri, stopPath, r.base, r.lo, r.hi))
      );
      const lastPass = (c: ScriptProcess) =>
        Math.max(-1, ...c.lines.map((l) => Number(/^pass (\d+)$/.exec(l)?.[1] ?? -1)));
      const finals: number[] = [];
      try {
        // Both are looping (neither stops before the stop file exists) when the backup dies.
        await Promise.all(clients.map((c) => c.waitLine(/^pass 1$/)));
        await sys.backup.kill();
        // Each finishes at least one whole pass that began after the kill.
        const atKill = clients.map(lastPass);
        await Promise.all(
          clients.map((c, i) => c.waitLine(new RegExp(`^pass ${atKill[i] + 2}$`))),
        );
        await Deno.writeTextFile(stopPath, "");
        for (const c of clients) {
          await c.done();
          finals.push(Number((await c.waitLine(/^final (\d+)$/))[1]));
        }
      } finally {
        for (const c of clients) await c.kill();
      }
      const expected = new Uint8Array(size);
      ranges.forEach((r, i) => passImage(expected, r.base, finals[i], r.lo, r.hi));
      const primary = await Deno.readFile(sys.primaryPath);
      for (const [i, r] of ranges.entries()) {
        assertSameBytes(
          primary.subarray(r.lo, r.hi),
          expected.subarray(r.lo, r.hi),
          `primary: ${r.name}'s range holds its pass ${finals[i]}`,
          r.lo,
        );
      }
      await assertTracked(sys, true);

      await repair(sys);
      const secondary = await Deno.readFile(sys.secondaryPath);
      for (const [i, r] of ranges.entries()) {
        assertSameBytes(
          secondary.subarray(r.lo, r.hi),
          expected.subarray(r.lo, r.hi),
          `secondary: ${r.name}'s range holds its pass ${finals[i]}`,
          r.lo,
        );
      }
      assert.equal(await sys.sha256Secondary(), await sys.sha256Primary());
    }, { sizeBytes: 32 * MiB });
  },
});

/** Why the file-system test cannot run here, or undefined when it can. */
async function fileSystemUnavailable(): Promise<string | undefined> {
  if (!await installed("sync", ["--version"])) return "sync is missing";
  return await kernelFsUnavailable();
}

const noFileSystem = await fileSystemUnavailable();
if (noFileSystem) {
  console.warn(`nbd_integration: ext4 over nbdfuse test SKIPPED: ${noFileSystem}`);
}

/** Mounts `device` on `dir`; the undo unmounts (lazily when busy). */
async function mountOn(cleanup: CleanupStack, device: string, dir: string, opts: string[] = []) {
  await runChecked("mount", [...opts, device, dir]);
  return cleanup.defer(`umount ${dir}`, async () => {
    const { code, stdout, stderr } = await run("umount", [dir]);
    if (code !== 0) {
      await run("umount", ["-l", dir]);
      throw new Error(`umount ${dir} failed (detached lazily): ${stdout}${stderr}`);
    }
  });
}

/** Attaches `file` to a free loop device; the undo detaches it. */
async function attachLoop(cleanup: CleanupStack, file: string, opts: string[] = []) {
  const loop = (await runChecked("losetup", ["-f", "--show", ...opts, file])).trim();
  assert.match(loop, /^\/dev\/loop\d+$/);
  const detach = cleanup.defer(
    `losetup -d ${loop}`,
    () => runChecked("losetup", ["-d", loop]).then(),
  );
  return { loop, detach };
}

/** Starts nbdfuse exposing `uri` as `dir/disk`; the undo unmounts it and waits for its exit. */
async function nbdfuse(cleanup: CleanupStack, uri: string, dir: string, sizeBytes: number) {
  const fuse = new ScriptProcess("nbdfuse", "nbdfuse", [`${dir}/disk`, uri]);
  const unmount = cleanup.defer(`nbdfuse on ${dir}`, async () => {
    const { code, stdout, stderr } = await run("fusermount3", ["-u", dir]);
    if (code !== 0) {
      await run("fusermount3", ["-uz", dir]);
      await fuse.kill();
      throw new Error(`fusermount3 -u ${dir} failed (killed nbdfuse): ${stdout}${stderr}`);
    }
    await fuse.done();
  });
  const deadline = Date.now() + 10_000;
  while ((await Deno.stat(`${dir}/disk`).catch(() => undefined))?.size !== sizeBytes) {
    if (fuse.exited) throw new Error(`nbdfuse ended before mounting\n${fuse.output()}`);
    if (Date.now() > deadline) throw new Error(`nbdfuse did not mount within 10 s`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { disk: `${dir}/disk`, unmount };
}

Deno.test({
  name: "ext4 through nbdfuse and a loop device, backup SIGKILLed mid-copy: the secondary is clean",
  ignore: noFileSystem !== undefined,
  async fn() {
    await withSystem(async (sys) => {
      const rand = seededRandom(seed + 4);
      const files = Array.from({ length: 16 }, (_, i) => {
        const data = randomBytes(rand, 64 * 1024 + Math.floor(rand() * 448 * 1024));
        return { name: `d${i % 3}/f${i}.bin`, data };
      });
      const sums = await Promise.all(files.map((f) => sha256(f.data)));
      const src = `${sys.dir}/src`;
      for (const f of files) {
        await Deno.mkdir(`${src}/${f.name.split("/")[0]}`, { recursive: true });
        await Deno.writeFile(`${src}/${f.name}`, f.data);
      }
      // Mount points live outside sys.dir, which stop() removes recursively.
      const mnt = await Deno.makeTempDir({ prefix: "nbd-integration-mnt-" });
      const [fuseDir, fsDir, roDir] = [`${mnt}/fuse`, `${mnt}/fs`, `${mnt}/ro`];
      for (const d of [fuseDir, fsDir, roDir]) await Deno.mkdir(d);
      const cleanup = new CleanupStack();
      cleanup.defer(`rmdir ${mnt}`, async () => {
        for (const d of [fuseDir, fsDir, roDir, mnt]) await Deno.remove(d); // only when empty
      });
      let failing = true;
      try {
        await sys.waitMirroring();
        const fuse = await nbdfuse(cleanup, sys.nbdUri, fuseDir, sys.sizeBytes);
        const rw = await attachLoop(cleanup, fuse.disk);
        await runChecked("mkfs.ext4", ["-q", "-F", rw.loop]);
        const umountFs = await mountOn(cleanup, rw.loop, fsDir);
        const copy = async (from: number, to: number) => {
          for (const f of files.slice(from, to)) {
            await Deno.mkdir(`${fsDir}/${f.name.split("/")[0]}`, { recursive: true });
            await Deno.copyFile(`${src}/${f.name}`, `${fsDir}/${f.name}`);
          }
        };
        await copy(0, 6);
        await runChecked("sync", []);
        await copy(6, 8);
        const syncing = runChecked("sync", []); // the backup dies while this sync's writes flow
        await new Promise((r) => setTimeout(r, 5));
        await sys.backup.kill();
        await syncing;
        await copy(8, files.length);
        await runChecked("sync", []);
        await umountFs();
        await rw.detach();
        await fuse.unmount();
        await assertTracked(sys);

        await repair(sys);
        assert.equal(await sys.sha256Secondary(), await sys.sha256Primary());
        const fsck = await run("e2fsck", ["-fn", sys.secondaryPath]);
        assert.equal(fsck.code, 0, `e2fsck -fn of the secondary:\n${fsck.stdout}${fsck.stderr}`);

        const ro = await attachLoop(cleanup, sys.secondaryPath, ["-r"]);
        const umountRo = await mountOn(cleanup, ro.loop, roDir, ["-o", "ro"]);
        for (const [i, f] of files.entries()) {
          const got = await Deno.readFile(`${roDir}/${f.name}`);
          assert.equal(await sha256(got), sums[i], `${f.name} read from the secondary`);
        }
        await umountRo();
        await ro.detach();
        failing = false;
      } finally {
        await cleanup.run(failing);
      }
    });
  },
});
