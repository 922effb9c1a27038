/**
 * Starts a real trackmirror service process on a loopback port for integration tests, waits until
 * its /healthz answers, and stops it (SIGKILL on demand) so no test leaves a process behind.
 */

const root = new URL("../", import.meta.url).pathname;

/** A free TCP port on 127.0.0.1, picked by the kernel. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** How long `stop` waits for a SIGTERMed service before it SIGKILLs it. */
const stopGraceMsDefault = 5000;

export interface ServiceProcess {
  readonly url: string;
  readonly port: number;
  readonly child: Deno.ChildProcess;
  /** Output collected so far (stdout and stderr interleaved), for failure messages. */
  output(): string;
  /** True once the process has exited (killed, stopped, or on its own). */
  readonly exited: boolean;
  /** Kills with SIGKILL and waits for the exit. */
  kill(): Promise<void>;
  /** Stops with SIGTERM (SIGKILL after `stopGraceMs`) and waits; safe to call twice. */
  stop(): Promise<void>;
}

export interface StartOptions {
  /** Port to listen on (default: a free one). */
  port?: number;
  /** Bound on the wait for /healthz. */
  readyMs?: number;
  env?: Record<string, string>;
  /** Flags for `deno run` itself, e.g. `--cpu-prof`. */
  denoFlags?: string[];
  /** How long `stop` waits after SIGTERM before SIGKILL (a CPU profile is written on exit). */
  stopGraceMs?: number;
  /** Working directory of the process (default: the repo root). */
  cwd?: string;
}

/**
 * Runs `script` (relative to the repo root, e.g. "tracker/main.ts") with `args` plus `--port`,
 * and waits up to `readyMs` for `GET /healthz`.
 */
export async function startService(
  script: string,
  args: string[],
  opts: StartOptions = {},
): Promise<ServiceProcess> {
  const port = opts.port ?? freePort();
  const denoFlags = opts.denoFlags ?? [];
  // The backup's link listener defaults to port 8704; tests never take a fixed port.
  if (script === "backup/main.ts" && !args.includes("--link-port")) {
    args = [...args, "--link-port", "0"];
  }
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--quiet",
      ...denoFlags,
      `${root}${script}`,
      "--port",
      String(port),
      ...args,
    ],
    cwd: opts.cwd ?? root,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", ...opts.env },
  }).spawn();
  let log = "";
  const decoder = new TextDecoder();
  const drain = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) log += decoder.decode(chunk);
  };
  const drained = Promise.all([drain(child.stdout), drain(child.stderr)]);
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  const url = `http://127.0.0.1:${port}`;
  const proc: ServiceProcess = {
    url,
    port,
    child,
    output: () => log,
    get exited() {
      return exited;
    },
    async kill() {
      if (!exited) child.kill("SIGKILL");
      await status;
      await drained;
    },
    async stop() {
      if (!exited) {
        child.kill("SIGTERM");
        const timer = setTimeout(
          () => !exited && child.kill("SIGKILL"),
          opts.stopGraceMs ?? stopGraceMsDefault,
        );
        await status;
        clearTimeout(timer);
      }
      await drained;
    },
  };
  const deadline = Date.now() + (opts.readyMs ?? 20_000);
  while (Date.now() < deadline) {
    if (exited) {
      await drained;
      throw new Error(`${script} exited before it was ready:\n${log}`);
    }
    try {
      const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) });
      await res.body?.cancel();
      if (res.ok) return proc;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  await proc.kill();
  throw new Error(`${script} did not answer /healthz within ${opts.readyMs ?? 20_000} ms:\n${log}`);
}
