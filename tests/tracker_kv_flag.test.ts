/**
 * The tracker's `--kv` flag: a scheme it does not know, or an etcd URL with a bad host list, is
 * refused with exit 2 naming the value and the flag, and nothing is written; an etcd URL is a
 * cluster, not a path (once, `--kv etcd://…` made a directory named "etcd:" and ran on it).
 */
import assert from "node:assert/strict";
import { freePort, startService } from "../harness/service_process.ts";
import { parseKvTarget } from "../tracker/store/kv_target.ts";

const root = new URL("../", import.meta.url).pathname;

/** Runs the tracker with `args` in `cwd` until it exits. */
async function runTracker(cwd: string, args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", `${root}tracker/main.ts`, "--port", "0", ...args],
    cwd,
    env: { NO_COLOR: "1" },
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

async function entries(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) names.push(e.name);
  return names.sort();
}

Deno.test("--kv values the tracker refuses exit 2, name the value and the flag, write nothing", async (t) => {
  const cwd = await Deno.makeTempDir();
  try {
    const cases = [
      ["foo://x", /--kv "foo:\/\/x" has an unknown scheme "foo:\/\/"/],
      ["redis://127.0.0.1:6379", /unknown scheme "redis:\/\/"/],
      ["etcd://", /--kv "etcd:\/\/" has a bad etcd endpoint ""/],
      ["etcd://127.0.0.1", /bad etcd endpoint "127.0.0.1"/],
      ["etcd://127.0.0.1:2379,", /bad etcd endpoint ""/],
      ["etcd://127.0.0.1:99999", /bad etcd endpoint "127.0.0.1:99999"/],
      ["etcd://a b:2379", /bad etcd endpoint "a b:2379"/],
      ["etcd://127.0.0.1:2379,127.0.0.1:2379", /endpoint twice/],
      ["etcd://127.0.0.1:2379/a/b", /bad namespace "a\/b"/],
    ] as const;
    for (const [value, message] of cases) {
      await t.step(value, async () => {
        const { code, stderr } = await runTracker(cwd, ["--kv", value]);
        assert.equal(code, 2, stderr);
        assert.match(stderr, message);
        assert.deepEqual(await entries(cwd), [], "nothing was created");
      });
    }
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

Deno.test("--kv etcd://HOST:PORT runs on the cluster and creates no directory named etcd:", async () => {
  const cwd = await Deno.makeTempDir();
  // No etcd listens there: the tracker still starts, and answers 503 until the cluster does.
  const kv = `etcd://127.0.0.1:${freePort()},127.0.0.1:${freePort()}`;
  const proc = await startService("tracker/main.ts", ["--kv", kv], { cwd });
  try {
    assert.match(proc.output(), /kv etcd:\/\//);
    const res = await fetch(`${proc.url}/v1/volumes/v1`);
    assert.equal(res.status, 503, await res.text());
    assert.deepEqual(await entries(cwd), []);
  } finally {
    await proc.stop();
    await Deno.remove(cwd, { recursive: true });
  }
});

Deno.test("--kv values that are Deno KV stay Deno KV", () => {
  assert.deepEqual(parseKvTarget("./data/tracker.kv"), {
    kind: "deno-kv",
    path: "./data/tracker.kv",
    remote: false,
  });
  assert.equal(parseKvTarget(":memory:").kind, "deno-kv");
  assert.deepEqual(parseKvTarget("https://kv.example:4512"), {
    kind: "deno-kv",
    path: "https://kv.example:4512",
    remote: true,
  });
  assert.deepEqual(parseKvTarget("etcd://127.0.0.1:2379,[::1]:2380/prod"), {
    kind: "etcd",
    endpoints: ["127.0.0.1:2379", "[::1]:2380"],
    namespace: "prod/",
  });
});
