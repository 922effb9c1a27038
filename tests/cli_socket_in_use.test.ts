/**
 * Unix socket flags (`--nbd-socket`, `--link-socket`): a socket file a killed process left is
 * replaced, so a service restarted after SIGKILL comes up; one a live process answers on is
 * refused, naming the flag, so a second instance never takes the socket from the first.
 */
import assert from "node:assert/strict";
import { freePort } from "../harness/service_process.ts";
import { startSystem } from "../harness/system.ts";
import { runScript } from "../harness/tools.ts";

/** Leaves a socket file at `path` that nothing answers on: its listener is SIGKILLed. */
async function staleSocket(path: string): Promise<void> {
  const code = `const l = Deno.listen({ transport: "unix", path: ${JSON.stringify(path)} });
console.log("listening");
for await (const c of l) c.close();`;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", "--quiet", code],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.getReader();
  await reader.read(); // "listening"
  child.kill("SIGKILL");
  await child.status;
  reader.releaseLock();
  await child.stdout.cancel();
  assert.ok((await Deno.lstat(path)).isSocket, "the killed listener left its socket file");
}

Deno.test("a socket left by a killed agent is replaced; a live one is refused naming the flag", async () => {
  const dir = await Deno.makeTempDir({ prefix: "trackmirror-sock-" });
  const stale = `${dir}/nbd.sock`;
  await staleSocket(stale);
  const sys = await startSystem({ hostArgs: ["--nbd-socket", stale] });
  try {
    const conn = await Deno.connect({ transport: "unix", path: stale });
    conn.close(); // the new agent answers on it

    const host = await runScript("host/main.ts", [
      "--port",
      "0",
      "--nbd-port",
      String(freePort()),
      "--nbd-socket",
      stale,
      "--host-id",
      "second",
      "--tracker",
      sys.tracker.url,
      "--backup",
      sys.backup.url,
      "--volume",
      `other=${dir}/other.img:1MiB`,
    ], { timeoutMs: 30_000 });
    assert.equal(host.code, 1, host.stdout + host.stderr);
    assert.match(
      host.stderr,
      new RegExp(`^Error: Address ${stale} is already in use \\(--nbd-socket ${stale}\\)`),
    );
    await Deno.connect({ transport: "unix", path: stale }).then((c) => c.close());

    const backup = await runScript("backup/main.ts", [
      "--port",
      "0",
      "--link-port",
      "0",
      "--data",
      `${dir}/backup2`,
      "--link-socket",
      stale,
    ]);
    assert.equal(backup.code, 1, backup.stdout + backup.stderr);
    assert.match(backup.stderr, /is already in use \(--link-socket /);
    await assert.rejects(Deno.stat(`${dir}/backup2`), Deno.errors.NotFound, "nothing created");
    await Deno.connect({ transport: "unix", path: stale }).then((c) => c.close());
  } finally {
    await sys.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
