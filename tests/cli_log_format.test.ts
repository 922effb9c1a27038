/** `--log-format`: a value other than text or json exits 2 naming it, before anything is written. */
import assert from "node:assert/strict";
import { runScript } from "../harness/tools.ts";

Deno.test("a bad --log-format exits 2 naming the value, on every service and start", async () => {
  const dir = await Deno.makeTempDir({ prefix: "trackmirror-logfmt-" });
  try {
    const commands: [string, string[]][] = [
      ["tracker/main.ts", ["--kv", `${dir}/t/tracker.kv`]],
      ["backup/main.ts", ["--data", `${dir}/b`]],
      ["host/main.ts", ["--volume", `v0=${dir}/h/v0.img:1MiB`]],
      ["start.ts", ["--data", `${dir}/s`]],
    ];
    const outs = await Promise.all(
      commands.map(([script, args]) => runScript(script, [...args, "--log-format", "xml"])),
    );
    for (const [i, [script]] of commands.entries()) {
      assert.equal(outs[i].code, 2, `${script}: ${outs[i].stdout}${outs[i].stderr}`);
      assert.match(outs[i].stderr, /--log-format "xml" must be one of: text, json/, script);
    }
    assert.deepEqual([...Deno.readDirSync(dir)], [], "nothing was written");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
