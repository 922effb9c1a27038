/**
 * A port another process holds: every command names the address and the flag that chose it,
 * exits 1 without a stack, and creates nothing (it checks before it opens any state).
 */
import assert from "node:assert/strict";
import { freePort } from "../harness/service_process.ts";
import { runScript } from "../harness/tools.ts";

Deno.test("a taken port is named with its address and flag, and nothing is created", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "trackmirror-inuse-" });
  const held = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (held.addr as Deno.NetAddr).port;
  const p = String(port);
  const volume = ["--volume", `vol0=${dir}/host/vol0.img:1MiB`];
  const unreachable = ["--tracker", "http://127.0.0.1:9", "--backup", "http://127.0.0.1:9"];
  const cases: [string, string, string[], string][] = [
    ["tracker --port", "tracker/main.ts", ["--port", p, "--kv", `${dir}/t/kv`], "--port"],
    [
      "backup --port",
      "backup/main.ts",
      ["--port", p, "--data", `${dir}/b`, "--link-port", "0"],
      "--port",
    ],
    [
      "backup --link-port",
      "backup/main.ts",
      ["--port", "0", "--data", `${dir}/b`, "--link-port", p],
      "--link-port",
    ],
    ["host --port", "host/main.ts", ["--port", p, ...unreachable, ...volume], "--port"],
    [
      "host --nbd-port",
      "host/main.ts",
      ["--port", "0", "--nbd-port", p, ...unreachable, ...volume],
      "--nbd-port",
    ],
    [
      "start --backup-port",
      "start.ts",
      [
        "--data",
        `${dir}/s`,
        "--tracker-port",
        String(freePort()),
        "--backup-port",
        p,
        "--host-port",
        String(freePort()),
        "--nbd-port",
        String(freePort()),
        "--link-port",
        String(freePort()),
      ],
      "--backup-port",
    ],
  ];
  try {
    for (const [name, script, args, flag] of cases) {
      await t.step(name, async () => {
        const out = await runScript(script, args, { timeoutMs: 30_000 });
        assert.equal(out.code, 1, out.stdout + out.stderr);
        assert.equal(
          out.stderr,
          `Error: Address 127.0.0.1:${port} is already in use (${flag} ${port}): another ` +
            `process listens there (a trackmirror already running?); stop it or pass another ` +
            `${flag}\n`,
        );
        assert.doesNotMatch(out.stdout, /is running|listening/);
      });
    }
    const left = [];
    for await (const e of Deno.readDir(dir)) left.push(e.name);
    assert.deepEqual(left, [], "no command created anything");
  } finally {
    held.close();
    await Deno.remove(dir, { recursive: true });
  }
});
