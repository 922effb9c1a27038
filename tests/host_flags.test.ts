/** The host agent's timing flags: a bad value exits 2 with a message naming it, before any port is taken. */
import assert from "node:assert/strict";
import { runScript } from "../harness/tools.ts";

Deno.test("host exits 2 naming a bad --lease-ms or --probe-interval-ms-max", async (t) => {
  const volume = ["--volume", "vol0=/nonexistent/never-created.img:1MiB"];
  const cases: [string[], RegExp][] = [
    [["--lease-ms", "999"], /--lease-ms "999" must be between 1000 and 86400000/],
    [["--lease-ms", "soon"], /--lease-ms "soon" must be a whole number/],
    [["--probe-interval-ms-max", "100"], /--probe-interval-ms-max "100" must be at least 250/],
  ];
  for (const [args, message] of cases) {
    await t.step(args.join(" "), async () => {
      const out = await runScript("host/main.ts", [...volume, ...args]);
      assert.equal(out.code, 2, out.stderr);
      assert.match(out.stderr, message);
    });
  }
});

Deno.test("host, reconstruct, verify and status exit 2 naming a bad --tracker list", async (t) => {
  const commands: [string, string[]][] = [
    ["host/main.ts", ["--volume", "vol0=/nonexistent/never-created.img:1MiB"]],
    ["host/resync/reconstruct.ts", []],
    ["host/resync/verify.ts", []],
    ["host/status/status.ts", []],
  ];
  const lists: [string, RegExp][] = [
    ["http://127.0.0.1:1,,http://127.0.0.1:2", /--tracker ".*" has an empty entry \(number 2\)/],
    [
      "http://127.0.0.1:1,http://127.0.0.1:1/",
      /--tracker ".*" names "http:\/\/127.0.0.1:1\/" twice/,
    ],
    [
      "http://127.0.0.1:1,tracker2:8701",
      /--tracker "tracker2:8701" must be an http:\/\/ or https:\/\/ URL/,
    ],
  ];
  for (const [script, args] of commands) {
    for (const [list, message] of lists) {
      await t.step(`${script} --tracker ${list}`, async () => {
        const out = await runScript(script, [...args, "--tracker", list]);
        assert.equal(out.code, 2, out.stdout + out.stderr);
        assert.match(out.stderr, message);
      });
    }
  }
});

Deno.test("reconstruct and verify exit 2 naming a --poll-ms outside its bounds", async (t) => {
  for (const script of ["host/resync/reconstruct.ts", "host/resync/verify.ts"]) {
    await t.step(script, async () => {
      const out = await runScript(script, ["--tracker", "http://127.0.0.1:1", "--poll-ms", "0"]);
      assert.equal(out.code, 2, out.stdout + out.stderr);
      assert.match(out.stderr, /--poll-ms "0" must be between 10 and 60000/);
    });
  }
});
