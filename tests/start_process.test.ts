/**
 * `deno task start` as a real process: it answers for its own children only. It writes a pid file
 * per service under --data; a killed child is reported (which one, how) while the others keep
 * serving; a second start on the same ports or the same data fails naming the port or the pid,
 * without the "running" banner; SIGTERM stops every child and removes the pid files.
 */
import assert from "node:assert/strict";
import { freePort } from "../harness/service_process.ts";

const root = new URL("../", import.meta.url).pathname;
const decoder = new TextDecoder();
/** Bound on each wait for start's output (start-up of three services on a loaded machine). */
const outputWaitMs = 60_000;

/** A running `start.ts` with its output collected, and a wait for a line matching a pattern. */
function spawnStart(args: string[]) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", `${root}start.ts`, ...args],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  let stdout = "";
  let stderr = "";
  const waiters = new Set<() => void>();
  const drain = async (stream: ReadableStream<Uint8Array>, into: (text: string) => void) => {
    for await (const chunk of stream) {
      into(decoder.decode(chunk));
      for (const w of waiters) w();
    }
  };
  const drained = Promise.all([
    drain(child.stdout, (t) => (stdout += t)),
    drain(child.stderr, (t) => (stderr += t)),
  ]);
  return {
    child,
    output: () => ({ stdout, stderr }),
    drained,
    /** Resolves once stdout + stderr match `pattern`; rejects after outputWaitMs or on exit. */
    waitFor(pattern: RegExp): Promise<void> {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`start never printed ${pattern}:\n${stdout}${stderr}`));
        }, outputWaitMs);
        const check = () => {
          if (!pattern.test(stdout + stderr)) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve();
        };
        waiters.add(check);
        check();
      });
    },
  };
}

async function runStart(args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", `${root}start.ts`, ...args],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
    signal: AbortSignal.timeout(outputWaitMs),
  }).output();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

async function pidOf(data: string, name: string): Promise<number | undefined> {
  try {
    return Number((await Deno.readTextFile(`${data}/pids/${name}.pid`)).trim());
  } catch {
    return undefined;
  }
}

async function alive(pid: number): Promise<boolean> {
  try {
    await Deno.stat(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

async function health(port: number): Promise<{ pid: number; service: string }> {
  const res = await fetch(`http://127.0.0.1:${port}/healthz`);
  assert.equal(res.status, 200);
  return await res.json();
}

Deno.test({
  name: "start keeps the others up when a child dies, writes pid files, and refuses a second start",
  ignore: Deno.build.os !== "linux", // pid liveness is read from /proc
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "trackmirror-start-" });
    const data = `${dir}/data`;
    const ports = {
      tracker: freePort(),
      backup: freePort(),
      host: freePort(),
      nbd: freePort(),
      link: freePort(),
    };
    const portArgs = (p: typeof ports) => [
      "--tracker-port",
      String(p.tracker),
      "--backup-port",
      String(p.backup),
      "--host-port",
      String(p.host),
      "--nbd-port",
      String(p.nbd),
      "--link-port",
      String(p.link),
    ];
    const start = spawnStart(["--data", data, ...portArgs(ports), "--volume-size", "4MiB"]);
    const pids: number[] = [];
    try {
      await start.waitFor(/trackmirror is running/);
      const servicePid = { tracker: 0, backup: 0, host: 0 };
      for (const name of ["tracker", "backup", "host"] as const) {
        const pid = await pidOf(data, name);
        assert.ok(pid, `${data}/pids/${name}.pid names a pid`);
        pids.push(pid);
        servicePid[name] = pid;
        const h = await health(ports[name]);
        assert.deepEqual([h.service, h.pid], [name, pid], `${name}.pid is the ${name} answering`);
      }
      assert.equal(await pidOf(data, "start"), start.child.pid);

      {
        const second = await runStart(["--data", `${dir}/other`, ...portArgs(ports)]);
        assert.equal(second.code, 1, second.stdout + second.stderr);
        assert.match(
          second.stderr,
          new RegExp(
            `Address 127\\.0\\.0\\.1:${ports.tracker} is already in use ` +
              `\\(--tracker-port ${ports.tracker}\\)`,
          ),
        );
        assert.doesNotMatch(second.stdout, /is running/);
      }
      {
        const others = {
          tracker: freePort(),
          backup: freePort(),
          host: freePort(),
          nbd: freePort(),
          link: freePort(),
        };
        const second = await runStart(["--data", data, ...portArgs(others)]);
        assert.equal(second.code, 1, second.stdout + second.stderr);
        assert.match(
          second.stderr,
          new RegExp(
            `is in use: start pid ${start.child.pid} \\(.*/pids/start\\.pid\\) still runs`,
          ),
        );
        assert.doesNotMatch(second.stdout, /is running/);
      }

      Deno.kill(servicePid.backup, "SIGKILL");
      await start.waitFor(
        new RegExp(
          `backup \\(pid ${servicePid.backup}\\) was killed by SIGKILL .*; ` +
            `tracker and host agent keep running`,
        ),
      );
      assert.match(start.output().stderr, /To start it again: deno task backup --port /);
      assert.equal(await pidOf(data, "backup"), undefined, "the dead backup's pid file is gone");
      assert.equal((await health(ports.tracker)).pid, servicePid.tracker);
      assert.equal((await health(ports.host)).pid, servicePid.host);

      start.child.kill("SIGTERM");
      const status = await start.child.status;
      assert.equal(status.code, 0, `${start.output().stdout}${start.output().stderr}`);
      assert.equal(await alive(servicePid.tracker), false, "the tracker was stopped");
      assert.equal(await alive(servicePid.host), false, "the host agent was stopped");
      const left = [];
      for await (const e of Deno.readDir(`${data}/pids`)) left.push(e.name);
      assert.deepEqual(left, [], "every pid file was removed");
    } finally {
      try {
        start.child.kill("SIGKILL");
      } catch { /* already gone */ }
      await start.child.status;
      for (const pid of pids) {
        try {
          if (await alive(pid)) Deno.kill(pid, "SIGKILL");
        } catch { /* gone */ }
      }
      await start.drained;
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "start --log-format json prints only JSON lines, the running banner as one event",
  ignore: Deno.build.os !== "linux",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "trackmirror-start-json-" });
    const data = `${dir}/data`;
    const ports = ["tracker", "backup", "host", "nbd", "link"].flatMap((
      name,
    ) => [`--${name}-port`, String(freePort())]);
    const start = spawnStart([
      "--data",
      data,
      ...ports,
      "--volume-size",
      "4MiB",
      "--log-format",
      "json",
    ]);
    const pids: number[] = [];
    try {
      await start.waitFor(/"kind":"log","message":"trackmirror is running/);
      for (const name of ["tracker", "backup", "host"]) {
        const pid = await pidOf(data, name);
        if (pid) pids.push(pid);
      }
      start.child.kill("SIGTERM");
      assert.equal((await start.child.status).code, 0);
      await start.drained;
      const { stdout, stderr } = start.output();
      const lines = (stdout + stderr).split("\n").filter((l) => l !== "");
      for (const line of lines) {
        const event = JSON.parse(line); // throws on a line that is not JSON
        assert.equal(typeof event.at, "number", line);
        assert.equal(typeof event.level, "string", line);
      }
      const banner = lines.map((l) => JSON.parse(l)).find((e) =>
        e.service === "start" && e.message.startsWith("trackmirror is running")
      );
      assert.ok(banner, "the banner is an event of start");
      assert.match(banner.message, new RegExp(`pid files ${data}/pids`));
    } finally {
      try {
        start.child.kill("SIGKILL");
      } catch { /* already gone */ }
      await start.child.status;
      for (const pid of pids) {
        try {
          if (await alive(pid)) Deno.kill(pid, "SIGKILL");
        } catch { /* gone */ }
      }
      await start.drained;
      await Deno.remove(dir, { recursive: true });
    }
  },
});
