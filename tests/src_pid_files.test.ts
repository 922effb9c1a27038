import assert from "node:assert/strict";
import {
  exitText,
  pidFilePath,
  processRunning,
  readPidFile,
  removePidFile,
  writePidFile,
} from "../src/pid_files.ts";

Deno.test("a pid file is written under DATA/pids, read back, and removed only by its owner", async () => {
  const data = await Deno.makeTempDir({ prefix: "trackmirror-pids-" });
  try {
    assert.equal(await readPidFile(data, "backup"), undefined, "none yet");
    await writePidFile(data, "backup", 4242);
    assert.equal(pidFilePath(data, "backup"), `${data}/pids/backup.pid`);
    assert.equal(await Deno.readTextFile(`${data}/pids/backup.pid`), "4242\n");
    assert.equal(await readPidFile(data, "backup"), 4242);
    await removePidFile(data, "backup", 1111);
    assert.equal(await readPidFile(data, "backup"), 4242, "another pid's removal leaves it");
    await removePidFile(data, "backup", 4242);
    assert.equal(await readPidFile(data, "backup"), undefined);
    await Deno.writeTextFile(`${data}/pids/host.pid`, "not a pid\n");
    assert.equal(await readPidFile(data, "host"), undefined, "garbage is no pid");
  } finally {
    await Deno.remove(data, { recursive: true });
  }
});

Deno.test({
  name: "a pid counts as running only while it is alive and runs the named script",
  ignore: Deno.build.os !== "linux",
  async fn() {
    // The child says when it runs: until its exec, ps shows the parent's command line.
    const needle = "pid-files-test-child";
    const child = new Deno.Command(Deno.execPath(), {
      args: ["eval", "--quiet", `console.log("${needle}"); setInterval(() => {}, 1000);`],
      stdout: "piped",
    }).spawn();
    const reader = child.stdout.getReader();
    try {
      const first = await reader.read();
      assert.equal(first.done, false, "the child ended before it said it runs");
      // Bounded poll: on a loaded machine ps may show the command line a moment late.
      let running = false;
      for (let i = 0; i < 100 && !running; i++) {
        running = await processRunning(child.pid, needle);
        if (!running) await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(running, true, `pid ${child.pid} not found running "${needle}"`);
      assert.equal(await processRunning(child.pid, "backup/main.ts"), false, "a reused pid");
    } finally {
      child.kill("SIGKILL");
      await child.status;
      reader.releaseLock();
      await child.stdout.cancel();
    }
    assert.equal(await processRunning(child.pid, needle), false, "an exited process");
  },
});

Deno.test("a child's end is said in words: its code, or the signal that killed it", () => {
  assert.equal(exitText({ success: false, code: 3, signal: null }), "exited with code 3");
  assert.equal(
    exitText({ success: false, code: 137, signal: "SIGKILL" }),
    "was killed by SIGKILL (exit code 137)",
  );
});
