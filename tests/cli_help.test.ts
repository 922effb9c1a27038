/**
 * `--help` and `--version` on every `deno task`: each exits 0 and prints, and the help names every
 * flag the README's "Commands and flags" table gives for that command, so neither can drift.
 */
import assert from "node:assert/strict";
import { runScript } from "../harness/tools.ts";
import { version } from "../src/version.ts";

/** Each task and the script `deno.json` runs for it. */
const tasks: [string, string][] = [
  ["start", "start.ts"],
  ["tracker", "tracker/main.ts"],
  ["backup", "backup/main.ts"],
  ["host", "host/main.ts"],
  ["reconstruct", "host/resync/reconstruct.ts"],
  ["verify", "host/resync/verify.ts"],
  ["status", "host/status/status.ts"],
  ["bench", "bench/main.ts"],
];

/** The flags the README's command table lists for `deno task NAME`. */
async function readmeFlags(name: string): Promise<string[]> {
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  const row = readme.split("\n").find((l) => l.startsWith(`| \`deno task ${name}\` |`));
  assert.ok(row, `README has a row for deno task ${name}`);
  return [...new Set([...row.matchAll(/--[a-z][a-z-]*/g)].map((m) => m[0]))];
}

Deno.test("every task's deno.json script is the one tested here", async () => {
  const config = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  for (const [name, script] of tasks) {
    assert.ok(String(config.tasks[name]).endsWith(script), `deno task ${name} runs ${script}`);
  }
});

Deno.test("every task prints its help with every flag the README lists, and exits 0", async (t) => {
  const outs = await Promise.all(tasks.map(([, script]) => runScript(script, ["--help"])));
  for (const [i, [name]] of tasks.entries()) {
    await t.step(name, async () => {
      const out = outs[i];
      assert.equal(out.code, 0, out.stderr);
      assert.match(out.stdout, new RegExp(`^Usage: deno task ${name}\\b`));
      assert.match(out.stdout, /--help +print this help and exit/);
      assert.match(out.stdout, /--version +print the version and exit/);
      for (const flag of await readmeFlags(name)) {
        assert.match(out.stdout, new RegExp(`${flag}\\b`), `${name} --help lists ${flag}`);
      }
    });
  }
});

Deno.test("every task prints the project version and exits 0", async (t) => {
  const outs = await Promise.all(tasks.map(([, script]) => runScript(script, ["--version"])));
  for (const [i, [name]] of tasks.entries()) {
    await t.step(name, () => {
      assert.equal(outs[i].code, 0, outs[i].stderr);
      assert.equal(outs[i].stdout, `trackmirror ${version}\n`);
    });
  }
});

Deno.test("--help wins over a bad flag on the same line", async () => {
  const out = await runScript("tracker/main.ts", ["--port", "nope", "--bogus", "--help"]);
  assert.equal(out.code, 0, out.stderr);
  assert.match(out.stdout, /^Usage: deno task tracker/);
});
