/**
 * Real NBD clients (libnbd's nbdinfo / nbdsh / nbdcopy, qemu-io, qemu-img) against the server in
 * this process serving a FileVolume. Correctness is judged from the image file's bytes and SHA-256,
 * never from the clients' own reports. A test is skipped, with a warning, only when its tool is
 * not installed.
 */
import assert from "node:assert/strict";
import { PassThroughDevice } from "../src/block_device.ts";
import { FileVolume } from "../host/fork/file_volume.ts";
import { type NbdServer, serveNbd } from "../host/nbd/server.ts";
import { freePort } from "../harness/service_process.ts";
import {
  installed,
  run,
  runChecked,
  sha256,
  sha256File,
  toolEnv,
  toolTimeoutMs,
} from "../harness/tools.ts";

const tools = ["nbdinfo", "nbdsh", "nbdcopy", "qemu-io", "qemu-img"] as const;
const have = Object.fromEntries(await Promise.all(tools.map(async (t) => [t, await installed(t)])));
for (const t of tools) {
  if (!have[t]) console.warn(`nbd_clients: ${t} is not installed; its tests are SKIPPED`);
}

interface Served {
  dir: string;
  path: string;
  volume: FileVolume;
  server: NbdServer;
  uri: string;
  [Symbol.asyncDispose](): Promise<void>;
}

/** A FileVolume of `sizeBytes` in a temp dir, exported as "vol0" on a free port. */
async function serveVolume(
  sizeBytes: number,
  wrap: (v: FileVolume) => PassThroughDevice | FileVolume = (v) => v,
  socket = false,
): Promise<Served> {
  const dir = await Deno.makeTempDir({ prefix: "nbd-clients-" });
  const path = `${dir}/vol0.img`;
  const volume = await FileVolume.open(path, sizeBytes);
  const device = wrap(volume);
  const socketPath = socket ? `${dir}/nbd.sock` : undefined;
  const server = serveNbd({
    lookup: (name) => name === "vol0" ? device : undefined,
    listExports: () => ["vol0"],
    port: freePort(),
    socketPath,
    log: () => {},
  });
  return {
    dir,
    path,
    volume,
    server,
    uri: socket ? `nbd+unix:///vol0?socket=${socketPath}` : `nbd://127.0.0.1:${server.port}/vol0`,
    async [Symbol.asyncDispose]() {
      await server.close();
      await volume.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** Seeded pseudo-random bytes (xorshift32), with some all-zero 1 MiB stretches. */
function randomImage(sizeBytes: number, seed: number): Uint8Array {
  const out = new Uint8Array(sizeBytes);
  const words = new Uint32Array(out.buffer, 0, Math.floor(sizeBytes / 4));
  let x = seed >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x;
  }
  for (let i = sizeBytes % 4; i > 0; i--) out[sizeBytes - i] = i;
  const MiB = 1024 * 1024;
  for (let at = 3 * MiB; at + MiB <= sizeBytes; at += 7 * MiB) out.fill(0, at, at + MiB);
  return out;
}

const MiB = 1024 * 1024;

Deno.test({
  name: "nbdinfo sees the export, its flags and block sizes, over TCP and a unix socket",
  ignore: !have.nbdinfo,
  async fn() {
    for (const socket of [false, true]) {
      await using s = await serveVolume(8 * MiB, undefined, socket);
      const info = JSON.parse(await runChecked("nbdinfo", ["--json", s.uri]));
      const exp = info.exports[0];
      assert.equal(info.protocol, "newstyle-fixed");
      assert.equal(info.TLS, false);
      assert.equal(exp["export-size"], 8 * MiB);
      for (const can of ["can_flush", "can_fua", "can_trim", "can_zero", "can_multi_conn"]) {
        assert.equal(exp[can], true, can);
      }
      assert.equal(exp.is_read_only, false);
      assert.equal(exp.block_size_maximum, 32 * MiB);
      const list = await runChecked("nbdinfo", ["--list", "--json", s.uri.replace("/vol0", "/")]);
      assert.deepEqual(
        JSON.parse(list).exports.map((e: { "export-name": string }) => e["export-name"]),
        [
          "vol0",
        ],
      );
    }
  },
});

Deno.test({
  name: "qemu-io writes patterns at unaligned offsets and the image file holds them",
  ignore: !have["qemu-io"],
  async fn() {
    await using s = await serveVolume(16 * MiB);
    const writes: [number, number, number][] = [
      [0x5a, 1000, 12345],
      [0xa5, 4 * MiB - 3, 70_001],
      [0x11, 16 * MiB - 777, 777], // up to the last byte
    ];
    const args = ["-f", "raw"];
    for (const [p, off, len] of writes) args.push("-c", `write -P ${p} ${off} ${len}`);
    for (const [p, off, len] of writes) args.push("-c", `read -P ${p} ${off} ${len}`);
    args.push("-c", "flush", s.uri);
    const out = await runChecked("qemu-io", args);
    assert.doesNotMatch(out, /fail|error/i);
    const image = await Deno.readFile(s.path);
    const expected = new Uint8Array(16 * MiB);
    for (const [p, off, len] of writes) expected.fill(p, off, off + len);
    assert.equal(await sha256(image), await sha256(expected));
  },
});

Deno.test({
  name: "nbdsh: many unaligned writes in flight, FUA, zero, flush, and refusals past the end",
  ignore: !have.nbdsh,
  async fn() {
    const size = 8 * MiB;
    await using s = await serveVolume(size);
    const expectedPath = `${s.dir}/expected.bin`;
    // Python computes the image it expects; the test compares it with the volume file.
    const script = `
import errno, random
rnd = random.Random(42)
size = ${size}
h.connect_uri(${JSON.stringify(s.uri)})
assert h.get_structured_replies_negotiated()
assert h.can_multi_conn() and h.can_fua() and h.can_zero()
expected = bytearray(size)
for batch in range(8):
    # 32 writes in flight at once, on disjoint ranges so completion order cannot matter
    cookies = []
    for i in range(32):
        base = (batch * 32 + i) * (size // 256)
        off = base + rnd.randrange(0, 1000)
        n = rnd.randrange(1, size // 256 - 1000)
        buf = rnd.randbytes(n)
        expected[off:off + n] = buf
        cookies.append(h.aio_pwrite(buf, off))
    while h.aio_in_flight() > 0:
        h.poll(-1)
    for c in cookies:
        assert h.aio_command_completed(c)  # raises if the server answered an error
h.pwrite(b"F" * 5000, 12345, nbd.CMD_FLAG_FUA)
expected[12345:17345] = b"F" * 5000
h.zero(2 * 1024 * 1024 + 1, 3333)
expected[3333:3333 + 2 * 1024 * 1024 + 1] = bytes(2 * 1024 * 1024 + 1)
h.flush()
for off in range(0, size, 1000003):
    n = min(1000003, size - off)
    assert h.pread(n, off) == expected[off:off + n], off
h.set_strict_mode(0)
for what, call, want in [
    ("write", lambda: h.pwrite(b"x" * 20, size - 10), errno.ENOSPC),
    ("read", lambda: h.pread(20, size - 10), errno.EINVAL),
    ("zero", lambda: h.zero(20, size - 10), errno.ENOSPC),
]:
    try:
        call()
        raise SystemExit(what + " past the end succeeded")
    except nbd.Error as e:
        assert e.errnum == want, (what, e.errnum, e)
assert h.pread(10, size - 10) == expected[size - 10:]
h.shutdown()
open(${JSON.stringify(expectedPath)}, "wb").write(bytes(expected))
`;
    await runChecked("nbdsh", ["-c", "-"], { stdin: script });
    const expected = await Deno.readFile(expectedPath);
    assert.equal(expected.length, size);
    assert.ok(expected.some((b) => b !== 0));
    assert.equal(await sha256File(s.path), await sha256(expected));
  },
});

Deno.test({
  name: "qemu-img convert copies a random image; SHA-256 of source and volume are equal",
  ignore: !have["qemu-img"],
  async fn() {
    const size = 40 * MiB + 4096;
    await using s = await serveVolume(size);
    const src = `${s.dir}/source.img`;
    await Deno.writeFile(src, randomImage(size, 0xc0ffee));
    await runChecked("qemu-img", ["convert", "-n", "-f", "raw", "-O", "raw", src, s.uri]);
    assert.equal(await sha256File(s.path), await sha256File(src));
  },
});

Deno.test({
  name: "nbdcopy copies a random image in and out over several connections",
  ignore: !have.nbdcopy,
  async fn() {
    const size = 48 * MiB + 512;
    await using s = await serveVolume(size);
    const src = `${s.dir}/source.img`;
    const back = `${s.dir}/back.img`;
    await Deno.writeFile(src, randomImage(size, 1234));
    await runChecked("nbdcopy", ["--connections=4", "--requests=16", "--flush", src, s.uri]);
    assert.equal(await sha256File(s.path), await sha256File(src));
    await Deno.writeFile(back, new Uint8Array(0));
    await runChecked("nbdcopy", ["--connections=4", s.uri, back]);
    assert.equal(await sha256File(back), await sha256File(src));
  },
});

/**
 * Holds writes until both halves of the volume have a write waiting, which proves two clients
 * were connected and writing at the same time; after that it lets everything through.
 */
class Rendezvous extends PassThroughDevice {
  constructor(next: FileVolume, private boundary: number) {
    super(next);
  }
  #held: (() => void)[] = [];
  #seen = new Set<string>();
  #open = false;
  override async write(offset: number, data: Uint8Array, opts?: { fua?: boolean }) {
    if (!this.#open) {
      this.#seen.add(offset < this.boundary ? "low" : "high");
      if (this.#seen.size === 2) {
        this.#open = true;
        this.#held.splice(0).forEach((go) => go());
      } else {
        await new Promise<void>((go) => this.#held.push(go));
      }
    }
    return super.write(offset, data, opts);
  }
}

Deno.test({
  name: "two clients on two connections write disjoint ranges at once",
  ignore: !have["qemu-io"],
  async fn() {
    const size = 32 * MiB;
    const half = size / 2 + 4097; // an unaligned boundary
    await using s = await serveVolume(size, (v) => new Rendezvous(v, half));
    const writer = (p: number, from: number, to: number) => {
      const args = ["-f", "raw"];
      for (let off = from; off < to; off += 300_001) {
        args.push("-c", `aio_write -P ${p} ${off} ${Math.min(300_001, to - off)}`);
      }
      args.push("-c", "aio_flush", s.uri);
      return runChecked("qemu-io", args);
    };
    await Promise.all([writer(0x33, 0, half), writer(0xcc, half, size)]);
    const expected = new Uint8Array(size);
    expected.fill(0x33, 0, half);
    expected.fill(0xcc, half);
    assert.equal(await sha256File(s.path), await sha256(expected));
  },
});

const haveFuse = await installed("nbdfuse") && await installed("fusermount3", ["-V"]) &&
  await installed("mkfs.ext4", ["-V"]) && await installed("e2fsck", ["-V"]) &&
  await installed("test", ["-c", "/dev/fuse"]); // Deno.stat of /dev needs --allow-all
if (!haveFuse) {
  console.warn("nbd_clients: nbdfuse, fusermount3, /dev/fuse or mkfs.ext4 missing; SKIPPED");
}

Deno.test({
  name: "mkfs.ext4 through nbdfuse leaves a file system e2fsck finds clean in the image",
  ignore: !haveFuse,
  async fn() {
    const size = 128 * MiB;
    await using s = await serveVolume(size);
    const mnt = `${s.dir}/mnt`;
    await Deno.mkdir(mnt);
    const fuse = new Deno.Command("nbdfuse", {
      args: [`${mnt}/vol`, s.uri],
      env: toolEnv,
      stdout: "null",
      stderr: "piped",
      signal: AbortSignal.timeout(toolTimeoutMs),
    }).spawn();
    const fuseExit = fuse.output();
    try {
      const deadline = Date.now() + 10_000;
      while ((await Deno.stat(`${mnt}/vol`).catch(() => undefined))?.size !== size) {
        if (Date.now() > deadline) throw new Error("nbdfuse did not mount within 10 s");
        await new Promise((r) => setTimeout(r, 50));
      }
      await runChecked("mkfs.ext4", ["-F", "-q", "-E", "discard", `${mnt}/vol`]);
    } finally {
      await runChecked("fusermount3", ["-u", mnt]).catch(() => fuse.kill("SIGKILL"));
      await fuseExit;
    }
    await s.server.close();
    await s.volume.close();
    const fsck = await run("e2fsck", ["-fn", s.path]);
    const report = fsck.stdout + fsck.stderr;
    assert.equal(fsck.code, 0, report);
    assert.match(report, /11\/\d+ files/);
  },
});
