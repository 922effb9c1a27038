/**
 * ext4 in the kernel on a trackmirror volume, for tests: nbdfuse exposes the volume's NBD export as
 * a file, a loop device makes it a block device, mount puts ext4 on it. Every step registers its
 * undo on a CleanupStack. `kernelFsUnavailable` says why this cannot run here (a tool, /dev/fuse,
 * loop devices or root missing); tests skip with that reason as a warning, as
 * tests/nbd_integration.test.ts does for the same stack.
 */
import assert from "node:assert/strict";
import { installed, run, runChecked } from "../../harness/tools.ts";
import { type CleanupStack, ScriptProcess } from "./nbd_integration_tools.ts";

const MiB = 1024 * 1024;
/** How long nbdfuse may take to show the export as a file of the volume's size. */
const fuseMountMs = 10_000;

/** Why ext4 over nbdfuse and a loop device cannot run here, or undefined when it can. */
export async function kernelFsUnavailable(): Promise<string | undefined> {
  const need: [string, string[]][] = [
    ["nbdfuse", ["--version"]],
    ["fusermount3", ["-V"]],
    ["mkfs.ext4", ["-V"]],
    ["e2fsck", ["-V"]],
    ["losetup", ["--version"]],
    ["mount", ["--version"]],
    ["umount", ["--version"]],
  ];
  for (const [tool, args] of need) if (!await installed(tool, args)) return `${tool} is missing`;
  // Deno.stat of /dev needs --allow-all; `test` does not.
  for (const dev of ["/dev/fuse", "/dev/loop-control"]) {
    if (!await installed("test", ["-c", dev])) return `${dev} is missing`;
  }
  if ((await run("id", ["-u"])).stdout.trim() !== "0") return "losetup and mount need root";
  // Loop devices and ext4 mounts may still be refused (a container without CAP_SYS_ADMIN).
  const dir = await Deno.makeTempDir({ prefix: "kernel-fs-probe-" });
  let loop = "";
  let mounted = false;
  try {
    await Deno.writeFile(`${dir}/fs.img`, new Uint8Array(4 * MiB));
    await runChecked("mkfs.ext4", ["-q", "-F", `${dir}/fs.img`]);
    await Deno.mkdir(`${dir}/mnt`);
    loop = (await runChecked("losetup", ["-f", "--show", `${dir}/fs.img`])).trim();
    await runChecked("mount", ["-o", "ro", loop, `${dir}/mnt`]);
    mounted = true;
    return undefined;
  } catch (err) {
    return `a loop device with ext4 cannot be mounted here: ${(err as Error).message}`;
  } finally {
    if (mounted) mounted = (await run("umount", [`${dir}/mnt`])).code !== 0;
    if (loop) await run("losetup", ["-d", loop]);
    // Never recursive into a file system still mounted.
    await Deno.remove(dir, { recursive: !mounted }).catch((err) =>
      console.warn(`kernel_fs: probe left ${dir}: ${err.message}`)
    );
  }
}

/**
 * Mounts `device` on `dir`; the undo unmounts, lazily (`umount -l`) when the device is gone or
 * busy — after the server behind it was killed, that is expected, so `lazyOk` makes it no failure.
 */
export async function mountOn(
  cleanup: CleanupStack,
  device: string,
  dir: string,
  opts: string[] = [],
  lazyOk = false,
): Promise<() => Promise<void>> {
  await runChecked("mount", [...opts, device, dir]);
  return cleanup.defer(`umount ${dir}`, async () => {
    const { code, stdout, stderr } = await run("umount", [dir]);
    if (code !== 0) {
      await runChecked("umount", ["-l", dir]);
      if (!lazyOk) throw new Error(`umount ${dir} failed (detached lazily): ${stdout}${stderr}`);
    }
  });
}

/** Attaches `file` to a free loop device; the undo detaches it. */
export async function attachLoop(
  cleanup: CleanupStack,
  file: string,
  opts: string[] = [],
): Promise<{ loop: string; detach: () => Promise<void> }> {
  const loop = (await runChecked("losetup", ["-f", "--show", ...opts, file])).trim();
  assert.match(loop, /^\/dev\/loop\d+$/);
  const detach = cleanup.defer(
    `losetup -d ${loop}`,
    () => runChecked("losetup", ["-d", loop]).then(),
  );
  return { loop, detach };
}

/**
 * Starts nbdfuse exposing `uri` as `dir/disk`; the undo unmounts it (lazily, and kills nbdfuse,
 * when the mount is busy) and waits for its exit. A test whose NBD server died kills `process`
 * first; the undo then only removes the dead mount.
 */
export async function nbdfuse(
  cleanup: CleanupStack,
  uri: string,
  dir: string,
  sizeBytes: number,
): Promise<{ disk: string; unmount: () => Promise<void>; process: ScriptProcess }> {
  const fuse = new ScriptProcess("nbdfuse", "nbdfuse", [`${dir}/disk`, uri]);
  const unmount = cleanup.defer(`nbdfuse on ${dir}`, async () => {
    if (fuse.exited) {
      // Killed by the test (its server gone): only the dead mount is left to undo.
      await runChecked("fusermount3", ["-uz", dir]);
      return;
    }
    const { code, stdout, stderr } = await run("fusermount3", ["-u", dir]);
    if (code !== 0) {
      await run("fusermount3", ["-uz", dir]);
      await fuse.kill();
      throw new Error(`fusermount3 -u ${dir} failed (killed nbdfuse): ${stdout}${stderr}`);
    }
    await fuse.done();
  });
  const deadline = Date.now() + fuseMountMs;
  while ((await Deno.stat(`${dir}/disk`).catch(() => undefined))?.size !== sizeBytes) {
    if (fuse.exited) throw new Error(`nbdfuse ended before mounting\n${fuse.output()}`);
    if (Date.now() > deadline) throw new Error(`nbdfuse did not mount within ${fuseMountMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { disk: `${dir}/disk`, unmount, process: fuse };
}
