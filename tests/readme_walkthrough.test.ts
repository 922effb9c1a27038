/**
 * README.md's "Walk-through: an outage and its repair", run as written: its sh block is taken from
 * the README by its heading (never a paraphrase) and run by bash in a fresh copy of the working
 * tree, so `./data` is this test's own, inside network and pid namespaces of its own, so the
 * walk-through's default ports (8701-8704, 10809) meet nothing else on the machine. The test then
 * checks from outside what the block's comments promise: the host mirrors, then tracks; 16 regions
 * (1 MiB) are marked; primary and secondary have the same SHA-256 (recomputed here from the
 * files); and once the block's last line returns, no process is left and no port answers.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { sha256 } from "../harness/tools.ts";
import { blockUnderHeading } from "./support/markdown_block.ts";
import { namespaceFlags, runInNamespace } from "./support/net_namespace.ts";
import { copyWorkingTree } from "./support/repo_copy.ts";

const root = new URL("../", import.meta.url).pathname;
const heading = "### Walk-through: an outage and its repair";
/** The defaults the walk-through uses: tracker, backup, host, link, NBD. */
const defaultPorts = [8701, 8702, 8703, 8704, 10809];
/** Bound on the whole block (it takes well under a minute even on a busy machine). */
const scriptTimeoutS = 150;
/** Bound on caching the npm packages before the namespace (a cold cache downloads them). */
const installTimeoutMs = 120_000;
const mib = 1024 * 1024;
/** Where the block writes its two MiB: at 0 (mirrored) and at 10 MiB (tracked). */
const writes = [0, 10 * mib];

Deno.test("the README walk-through works as written: mirror, outage, repair, equal images", async () => {
  const flags = await namespaceFlags();
  const dir = await Deno.makeTempDir({ prefix: "trackmirror-walkthrough-" });
  try {
    const repo = join(dir, "repo");
    assert.ok(await copyWorkingTree(repo) > 0, "Nothing was copied from the working tree");
    const script = join(dir, "walkthrough.sh");
    await Deno.writeTextFile(
      script,
      blockUnderHeading(await Deno.readTextFile(join(root, "README.md")), heading, "sh"),
    );
    // `deno` in the block is the deno running this test; its npm packages are cached here, while
    // the network is reachable (the namespace has only loopback).
    const bin = join(dir, "bin");
    await Deno.mkdir(bin);
    await Deno.symlink(Deno.execPath(), join(bin, "deno"));
    const env = { PATH: `${bin}:${Deno.env.get("PATH") ?? ""}`, NO_COLOR: "1" };
    const cache = await new Deno.Command(join(bin, "deno"), {
      args: ["install", "--quiet"],
      cwd: repo,
      env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(installTimeoutMs),
    }).output();
    assert.ok(cache.success, `deno install: ${new TextDecoder().decode(cache.stderr)}`);

    const run = await runInNamespace(flags, script, {
      cwd: repo,
      env,
      ports: defaultPorts,
      scriptTimeoutS,
    });
    const all = `--- stdout\n${run.stdout}\n--- stderr\n${run.stderr}`;
    assert.notEqual(
      run.scriptCode,
      124,
      `The walk-through did not end in ${scriptTimeoutS} s\n${all}`,
    );
    assert.doesNotMatch(run.stderr, /command not found|curl: \(\d+\)|jq: error/, all);

    assert.match(run.stdout + run.stderr, /trackmirror is running/, `No start banner\n${all}`);
    const modes = run.stdout.split("\n").map((l) => l.trim())
      .filter((l) => l === '"mirroring"' || l === '"tracking"');
    assert.deepEqual(modes, ['"mirroring"', '"tracking"'], `Modes printed\n${all}`);
    assert.match(
      run.stdout + run.stderr,
      /backup \(pid \d+\)[^\n]*SIGKILL/,
      `start did not say so\n${all}`,
    );
    const dirty = {
      regions: Number(run.stdout.match(/"dirtyRegions": (\d+)/)?.[1]),
      bytes: Number(run.stdout.match(/"dirtyBytes": (\d+)/)?.[1]),
    };
    assert.deepEqual(dirty, { regions: 16, bytes: mib }, `Tracker's dirty record\n${all}`);
    const copied = run.stdout.match(/(\d+) regions, (\d+) bytes copied/);
    assert.deepEqual(
      [Number(copied?.[1]), Number(copied?.[2])],
      [16, mib],
      `reconstruct did not copy just the marked MiB\n${all}`,
    );

    // The block's sha256sum line, and the same hashes recomputed here from the images.
    const printed = (path: string) =>
      run.stdout.match(new RegExp(`^([0-9a-f]{64})\\s+${path.replaceAll(".", "\\.")}$`, "m"))?.[1];
    const primary = await Deno.readFile(join(repo, "data/primary/vol0.img"));
    const secondary = await Deno.readFile(join(repo, "data/backup/volumes/vol0.img"));
    assert.equal(printed("data/primary/vol0.img"), await sha256(primary), all);
    assert.equal(printed("data/backup/volumes/vol0.img"), await sha256(secondary), all);
    assert.equal(await sha256(primary), await sha256(secondary), "Primary and secondary differ");
    for (const offset of writes) {
      assert.ok(
        primary.subarray(offset, offset + mib).some((b) => b !== 0),
        `The MiB written at ${offset} is not on the primary`,
      );
    }

    assert.deepEqual(run.leftover, [], `Processes left after the block's last line\n${all}`);
    assert.deepEqual(run.openPorts, [], `Ports still answering after the block\n${all}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
