/**
 * The shared token end to end on real processes: tracker, backup and host agent read it from a
 * file or the environment; the host's HTTP routes need the bearer, its link's HELLO carries the
 * token (the host only reaches `mirroring` when the backup took it), and its NBD port only opens
 * `VOLUME/TOKEN` — checked with qemu-img, nbdcopy and nbdsh using the URI README documents, and
 * judged by SHA-256 of the primary and secondary images. Misused token flags stop a command
 * before it touches anything, with an error naming the flag and the path.
 */
import assert from "node:assert/strict";
import { freePort, type ServiceProcess, startService } from "../harness/service_process.ts";
import { installed, run, runChecked, runScript, sha256, sha256File } from "../harness/tools.ts";
import { randomBytes, seededRandom } from "../src/random.ts";

const tools = ["qemu-img", "nbdcopy", "nbdsh"] as const;
const have = Object.fromEntries(await Promise.all(tools.map(async (t) => [t, await installed(t)])));
const missing = tools.filter((t) => !have[t]);
if (missing.length > 0) {
  console.warn(`integration_auth: ${missing.join(", ")} not installed; the NBD test is SKIPPED`);
}

const MiB = 1024 * 1024;
const sizeBytes = 8 * MiB;
/** Characters a URI must percent-encode, so the documented encoding is exercised. */
const token = "tm s3cret/%?#x";

Deno.test({
  name: "a token from a file guards HTTP, the link and NBD; real clients need VOLUME/TOKEN",
  ignore: missing.length > 0,
  async fn(t) {
    const dir = await Deno.makeTempDir({ prefix: "trackmirror-auth-" });
    const tokenFile = `${dir}/token`;
    await Deno.writeTextFile(tokenFile, `  ${token}  \n`);
    const primaryPath = `${dir}/vol0.img`;
    const nbdPort = freePort();
    const started: ServiceProcess[] = [];
    try {
      const tracker = await startService("tracker/main.ts", [
        "--kv",
        `${dir}/tracker.kv`,
        "--token-file",
        tokenFile,
      ]);
      started.push(tracker);
      const backup = await startService("backup/main.ts", ["--data", `${dir}/backup`], {
        env: { TRACKMIRROR_TOKEN: token },
      });
      started.push(backup);
      const host = await startService("host/main.ts", [
        "--nbd-port",
        String(nbdPort),
        "--tracker",
        tracker.url,
        "--backup",
        backup.url,
        "--volume",
        `vol0=${primaryPath}:${sizeBytes}`,
        "--token-file",
        tokenFile,
      ]);
      started.push(host);
      const bearer = { authorization: `Bearer ${token}` };
      const uri = `nbd://127.0.0.1:${nbdPort}/vol0/${encodeURIComponent(token)}`;

      await t.step("HTTP needs the bearer; the link took the token (mirroring)", async () => {
        const denied = await fetch(`${host.url}/v1/status`);
        await denied.body?.cancel();
        assert.equal(denied.status, 401);
        const deadline = Date.now() + 20_000;
        let mode = "";
        while (Date.now() < deadline && mode !== "mirroring") {
          mode = (await (await fetch(`${host.url}/v1/status`, { headers: bearer })).json()).mode;
          if (mode !== "mirroring") await new Promise((r) => setTimeout(r, 100));
        }
        assert.equal(mode, "mirroring", host.output());
      });

      const src = `${dir}/src.img`;
      const rnd = seededRandom(9);
      await Deno.writeFile(src, randomBytes(rnd, sizeBytes));
      const zeroes = await sha256(new Uint8Array(sizeBytes));

      await t.step("without the token or with a wrong one, every client is refused", async () => {
        const plain = `nbd://127.0.0.1:${nbdPort}/vol0`;
        const wrong = `nbd://127.0.0.1:${nbdPort}/vol0/not-it`;
        for (const target of [plain, wrong]) {
          const attempts: [string, string[]][] = [
            ["qemu-img", ["convert", "-n", "-f", "raw", "-O", "raw", src, target]],
            ["nbdcopy", [src, target]],
            ["nbdsh", ["-u", target, "-c", "h.pwrite(b'x' * 512, 0)"]],
          ];
          for (const [tool, args] of attempts) {
            const out = await run(tool, args);
            assert.notEqual(out.code, 0, `${tool} ${target} must be refused`);
            assert.match(out.stderr, /VOLUME\/TOKEN|policy/i, `${tool}: ${out.stderr}`);
          }
        }
        assert.equal(await sha256File(primaryPath), zeroes, "nothing was written");
        assert.doesNotMatch(host.output(), /s3cret/, "the host never logs the token");
      });

      const expected = await Deno.readFile(src);
      await t.step("with VOLUME/TOKEN, nbdcopy writes and reads back", async () => {
        await runChecked("nbdcopy", ["--flush", src, uri]);
        const back = `${dir}/back.img`;
        await Deno.writeFile(back, new Uint8Array(0));
        await runChecked("nbdcopy", [uri, back]);
        assert.equal(await sha256File(back), await sha256(expected));
      });

      await t.step("with VOLUME/TOKEN, qemu-img writes and compares", async () => {
        expected.set(randomBytes(rnd, 3 * MiB), 2 * MiB);
        await Deno.writeFile(src, expected);
        await runChecked("qemu-img", ["convert", "-n", "-f", "raw", "-O", "raw", src, uri]);
        await runChecked("qemu-img", ["compare", "-f", "raw", "-F", "raw", src, uri]);
      });

      await t.step("with VOLUME/TOKEN, nbdsh writes and reads back", async () => {
        await runChecked("nbdsh", [
          "-u",
          uri,
          "-c",
          "h.pwrite(b'Z' * 5000, 12345); h.flush(); assert h.pread(5000, 12345) == b'Z' * 5000",
        ]);
        expected.fill(0x5a, 12345, 12345 + 5000);
      });

      await t.step("primary and secondary hold exactly what the clients wrote", async () => {
        assert.equal(await sha256File(primaryPath), await sha256(expected));
        const flushed = await fetch(`${backup.url}/v1/flush`, { method: "POST", headers: bearer });
        await flushed.body?.cancel();
        assert.equal(flushed.status, 200);
        assert.equal(await sha256File(`${dir}/backup/volumes/vol0.img`), await sha256(expected));
      });
    } finally {
      for (const p of started.toReversed()) await p.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("misused token flags stop every command before it starts, naming flag and path", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "trackmirror-auth-" });
  try {
    const missingFile = `${dir}/no-such-token`;
    const emptyFile = `${dir}/empty-token`;
    await Deno.writeTextFile(emptyFile, "\n");
    const volume = ["--volume", `vol0=${dir}/vol0.img:1MiB`];
    const cases: [string, string, string[], RegExp][] = [
      [
        "tracker, an unreadable file",
        "tracker/main.ts",
        ["--port", "0", "--kv", `${dir}/kv`, "--token-file", missingFile],
        /--token-file ".*no-such-token" cannot be read/,
      ],
      [
        "backup, an empty file",
        "backup/main.ts",
        ["--port", "0", "--data", `${dir}/backup`, "--token-file", emptyFile],
        /--token-file ".*empty-token" is empty/,
      ],
      [
        "host, both flags",
        "host/main.ts",
        ["--port", "0", ...volume, "--token", "t0p", "--token-file", emptyFile],
        /--token and --token-file ".*empty-token" were both given/,
      ],
      [
        "reconstruct, an unreadable file",
        "host/resync/reconstruct.ts",
        ["--tracker", "http://127.0.0.1:9", "--token-file", missingFile],
        /--token-file ".*no-such-token" cannot be read/,
      ],
      [
        "start, both flags",
        "start.ts",
        ["--data", `${dir}/start`, "--token", "t0p", "--token-file", emptyFile],
        /--token and --token-file ".*empty-token" were both given/,
      ],
    ];
    for (const [name, script, args, message] of cases) {
      await t.step(name, async () => {
        const out = await runScript(script, args, { timeoutMs: 30_000 });
        assert.equal(out.code, 2, out.stdout + out.stderr);
        assert.match(out.stderr, message);
        assert.doesNotMatch(out.stderr, /t0p|at .*\.ts:\d+/, "no token and no stack trace");
      });
    }
    const left = [];
    for await (const e of Deno.readDir(dir)) left.push(e.name);
    assert.deepEqual(left.sort(), ["empty-token"], "no command created anything");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Pids and full command lines (`ps -ww`) of the processes whose command line mentions `needle`. */
async function processesMentioning(needle: string): Promise<{ pid: number; cmdline: string }[]> {
  const out = await runChecked("ps", ["-ww", "-eo", "pid=,args="]);
  return out.split("\n").filter((line) => line.includes(needle)).map((line) => {
    const [, pid, cmdline] = /^\s*(\d+)\s+(.*)$/.exec(line) ?? [];
    return { pid: Number(pid), cmdline };
  }).filter((p) => p.pid > 0);
}

Deno.test({
  name: "start --token-file hands the token to all three services without putting it in ps",
  ignore: !(await installed("ps", ["-p", "1"])),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "trackmirror-auth-start-" });
    const tokenFile = `${dir}/token`;
    const secret = `start-${crypto.randomUUID()}`;
    await Deno.writeTextFile(tokenFile, `${secret}\n`);
    const ports = { tracker: freePort(), backup: freePort(), host: freePort(), nbd: freePort() };
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--quiet",
        new URL("../start.ts", import.meta.url).pathname,
        "--data",
        `${dir}/data`,
        "--tracker-port",
        String(ports.tracker),
        "--backup-port",
        String(ports.backup),
        "--host-port",
        String(ports.host),
        "--nbd-port",
        String(ports.nbd),
        "--link-port",
        String(freePort()),
        "--volume-size",
        "4MiB",
        "--token-file",
        tokenFile,
      ],
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    const output = child.output();
    try {
      const bearer = { authorization: `Bearer ${secret}` };
      const deadline = Date.now() + 60_000;
      let ready = false;
      while (!ready && Date.now() < deadline) {
        try {
          const res = await fetch(`http://127.0.0.1:${ports.host}/v1/status`, { headers: bearer });
          await res.body?.cancel();
          ready = res.ok;
        } catch { /* not up yet */ }
        if (!ready) await new Promise((r) => setTimeout(r, 200));
      }
      assert.ok(ready, "the host agent answered with the bearer");
      for (const port of [ports.tracker, ports.backup, ports.host]) {
        const denied = await fetch(`http://127.0.0.1:${port}/v1/status`);
        await denied.body?.cancel();
        assert.equal(denied.status, 401, `port ${port} needs the token`);
      }
      const procs = await processesMentioning(`${dir}/data`);
      assert.ok(procs.length >= 3, procs.map((p) => p.cmdline).join("\n"));
      for (const p of procs) assert.ok(!p.cmdline.includes(secret), `in ps: ${p.cmdline}`);
    } finally {
      child.kill("SIGTERM");
      const out = await output;
      const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
      try {
        // start stops its children on SIGTERM; any left over is one of ours, started by it.
        for (const p of await processesMentioning(`${dir}/data`)) Deno.kill(p.pid, "SIGKILL");
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
      assert.doesNotMatch(text, new RegExp(secret), "start never prints the token");
    }
  },
});
