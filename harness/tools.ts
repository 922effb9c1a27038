/**
 * The one place tests and benches run outside tools and hash bytes: whether a tool is installed,
 * running a command to completion (bounded by a timeout, output kept for failure messages), and
 * SHA-256 of bytes or a file.
 */

/**
 * The environment tools run in. nbdsh is a python script: a python3 earlier on PATH (pyenv) may
 * lack the libnbd module; mkfs.ext4, e2fsck and losetup live in sbin.
 */
export const toolEnv = {
  PATH: `/usr/bin:/usr/sbin:/bin:/sbin:${Deno.env.get("PATH") ?? ""}`,
  LIBNBD_DEBUG: "0",
  NO_COLOR: "1",
};
/** A tool still running after this long is killed (and its caller fails). */
export const toolTimeoutMs = 60_000;

const decoder = new TextDecoder();

/** Whether `tool args` runs and exits 0. */
export async function installed(tool: string, args = ["--version"]): Promise<boolean> {
  try {
    const out = await new Deno.Command(tool, {
      args,
      env: toolEnv,
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).output();
    return out.success;
  } catch {
    return false;
  }
}

export interface RunOptions {
  /** Text written to the command's stdin (closed after); stdin is /dev/null without it. */
  stdin?: string;
  /** Added to `toolEnv`. */
  env?: Record<string, string>;
  cwd?: string;
  timeoutMs?: number;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `cmd` to completion (killed after `timeoutMs`); returns its exit code and output. */
export async function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const child = new Deno.Command(cmd, {
    args,
    env: { ...toolEnv, ...opts.env },
    cwd: opts.cwd,
    stdin: opts.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(opts.timeoutMs ?? toolTimeoutMs),
  }).spawn();
  if (opts.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(opts.stdin));
    await writer.close();
  }
  const out = await child.output();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/** Runs `cmd` to completion; returns stdout then stderr, or throws with them unless it exits 0. */
export async function runChecked(
  cmd: string,
  args: string[],
  opts: RunOptions = {},
): Promise<string> {
  const { code, stdout, stderr } = await run(cmd, args, opts);
  const text = stdout + stderr;
  if (code !== 0) throw new Error(`${cmd} ${args.join(" ")} exited ${code}:\n${text}`);
  return text;
}

/** Runs a Deno script of this repo (path relative to the root) with every permission. */
export function runScript(
  script: string,
  args: string[],
  opts: RunOptions = {},
): Promise<RunResult> {
  return run(Deno.execPath(), ["run", "-A", "--quiet", `${root}${script}`, ...args], opts);
}

const root = new URL("../", import.meta.url).pathname;

/**
 * Overwrites `count` bytes at `offset` of the file at `path` with `byte`: damage to an image
 * behind its owner's back, for tests that must find or repair it.
 */
export async function overwriteBytes(
  path: string,
  offset: number,
  count: number,
  byte: number,
): Promise<void> {
  const file = await Deno.open(path, { write: true });
  try {
    await file.seek(offset, Deno.SeekMode.Start);
    await file.write(new Uint8Array(count).fill(byte));
  } finally {
    file.close();
  }
}

/** SHA-256 of bytes, hex. */
export async function sha256(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** SHA-256 of a whole file, hex. */
export async function sha256File(path: string): Promise<string> {
  return sha256(await Deno.readFile(path));
}
