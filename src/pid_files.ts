/**
 * Pid files under a data directory (DATA/pids/NAME.pid): how an operator stops exactly one
 * service of one `deno task start` (`kill -9 $(cat DATA/pids/backup.pid)`) instead of every
 * process of that name on the machine, and how a second start on the same data finds the first.
 */
import { join } from "node:path";

/** The directory of a data directory's pid files. */
export function pidDir(data: string): string {
  return join(data, "pids");
}

/** Where the pid of service `name` (tracker, backup, host, start) of `data` is kept. */
export function pidFilePath(data: string, name: string): string {
  return join(pidDir(data), `${name}.pid`);
}

/** Writes `pid` (one line) as `name`'s pid file, creating DATA/pids. */
export async function writePidFile(data: string, name: string, pid: number): Promise<void> {
  await Deno.mkdir(pidDir(data), { recursive: true });
  await Deno.writeTextFile(pidFilePath(data, name), `${pid}\n`);
}

/** The pid in `name`'s pid file; undefined when there is none or it holds no pid. */
export async function readPidFile(data: string, name: string): Promise<number | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(pidFilePath(data, name));
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
  const pid = Number(text.trim());
  return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
}

/** Removes `name`'s pid file if it still names `pid` (a newer owner's file is left alone). */
export async function removePidFile(data: string, name: string, pid: number): Promise<void> {
  if (await readPidFile(data, name) !== pid) return;
  await Deno.remove(pidFilePath(data, name)).catch(() => {});
}

/**
 * Whether process `pid` is alive and its command line mentions `needle` (a script name): a pid
 * file left by a killed process may name a pid the system has since given to something else.
 * Asks `ps` (procps): Deno refuses to read another process's /proc/PID/cmdline without
 * --allow-all, which `deno task start` does not grant (a read there always failed, so an earlier
 * start was never found). Without `ps`, or when it cannot run, a pid file is taken as stale.
 */
export async function processRunning(pid: number, needle: string): Promise<boolean> {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    const out = await new Deno.Command("ps", {
      args: ["-o", "args=", "-p", String(pid)],
      stdout: "piped",
      stderr: "null",
    }).output();
    return out.success && new TextDecoder().decode(out.stdout).includes(needle);
  } catch {
    return false;
  }
}

/** How a child process ended, in words: "exited with code 3", "was killed by SIGKILL". */
export function exitText(status: Deno.CommandStatus): string {
  return status.signal !== null
    ? `was killed by ${status.signal} (exit code ${status.code})`
    : `exited with code ${status.code}`;
}
