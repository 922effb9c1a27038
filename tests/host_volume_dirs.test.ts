/**
 * `--volume NAME=PATH:SIZE` creates the primary's missing parent directories, and only once every
 * flag is valid: a bad command line creates nothing.
 */
import assert from "node:assert/strict";
import { startSystem } from "../harness/system.ts";
import { runScript } from "../harness/tools.ts";

Deno.test("a --volume under missing directories is created with them", async () => {
  const dir = await Deno.makeTempDir({ prefix: "trackmirror-voldirs-" });
  const path = `${dir}/a/b/c/deep.img`;
  const sys = await startSystem({ hostArgs: ["--volume", `deep=${path}:1MiB`] });
  try {
    assert.equal((await Deno.stat(path)).size, 1024 * 1024);
    const status = await (await fetch(`${sys.host.url}/v1/status`)).json();
    assert.ok(status.volumes.some((v: { name: string }) => v.name === "deep"), "it is served");
  } finally {
    await sys.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a bad flag beside a --volume under missing directories creates nothing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "trackmirror-voldirs-" });
  try {
    const out = await runScript("host/main.ts", [
      "--port",
      "0",
      "--volume",
      `vol0=${dir}/a/b/vol0.img:1MiB`,
      "--ack",
      "sometimes",
    ]);
    assert.equal(out.code, 2, out.stderr);
    assert.match(out.stderr, /--ack "sometimes" must be durable or received/);
    const left = [];
    for await (const e of Deno.readDir(dir)) left.push(e.name);
    assert.deepEqual(left, []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
