/**
 * Plumbing for tests/nbd_integration.test.ts (one-shot tools run through harness/tools.ts): talking
 * to a long-running client script line by line, and undoing mounts and loop devices in reverse order, even after a
 * failure.
 */

import { toolEnv, toolTimeoutMs } from "../../harness/tools.ts";

const decoder = new TextDecoder();

/**
 * A client script running as a child process: its stdout is read line by line so a test can wait
 * for a point in the script, and lines sent to its stdin let the script go on.
 */
export class ScriptProcess {
  readonly lines: string[] = [];
  #stderr = "";
  #changed: (() => void)[] = [];
  #exit: Promise<Deno.CommandStatus>;
  #exited = false;
  #stdin: WritableStreamDefaultWriter<Uint8Array>;
  readonly #child: Deno.ChildProcess;
  readonly #drained: Promise<unknown>;

  constructor(readonly name: string, cmd: string, args: string[]) {
    this.#child = new Deno.Command(cmd, {
      args,
      env: toolEnv,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(toolTimeoutMs),
    }).spawn();
    this.#stdin = this.#child.stdin.getWriter();
    this.#drained = Promise.all([this.#readLines(), this.#readStderr()]);
    this.#exit = this.#child.status.then((s) => {
      this.#exited = true;
      this.#wake();
      return s;
    });
  }

  /** An nbdsh process running `script` (python, with `h` the libnbd handle). */
  static nbdsh(name: string, script: string): ScriptProcess {
    return new ScriptProcess(name, "nbdsh", ["-c", script]);
  }

  /** Whether the process has ended. */
  get exited(): boolean {
    return this.#exited;
  }

  /** Everything the script printed, for failure messages. */
  output(): string {
    return `--- ${this.name} stdout ---\n${this.lines.join("\n")}\n--- ${this.name} stderr ---\n` +
      this.#stderr;
  }

  /** Resolves with the first line matching `pattern`; throws if the script ends first. */
  async waitLine(pattern: RegExp, timeoutMs = toolTimeoutMs): Promise<RegExpExecArray> {
    const deadline = Date.now() + timeoutMs;
    for (let seen = 0;;) {
      for (; seen < this.lines.length; seen++) {
        const m = pattern.exec(this.lines[seen]);
        if (m) return m;
      }
      if (this.#exited) {
        await this.#drained;
        if (seen < this.lines.length) continue;
        throw new Error(`${this.name} ended before printing ${pattern}\n${this.output()}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.name} did not print ${pattern}\n${this.output()}`);
      await new Promise<void>((wake) => {
        const timer = setTimeout(wake, left);
        this.#changed.push(() => {
          clearTimeout(timer);
          wake();
        });
      });
    }
  }

  /** Sends one line to the script's stdin. */
  async send(line: string): Promise<void> {
    await this.#stdin.write(new TextEncoder().encode(`${line}\n`));
  }

  /** Waits for the exit; throws with the output unless the script exited 0. */
  async done(): Promise<void> {
    await this.#stdin.close().catch(() => {});
    const status = await this.#exit;
    await this.#drained;
    if (!status.success) {
      throw new Error(`${this.name} exited ${status.code}\n${this.output()}`);
    }
  }

  /** Kills the script if it still runs and waits for it; never throws. */
  async kill(): Promise<void> {
    if (!this.#exited) this.#child.kill("SIGKILL");
    await this.#stdin.close().catch(() => {});
    await this.#exit;
    await this.#drained;
  }

  #wake() {
    this.#changed.splice(0).forEach((wake) => wake());
  }

  async #readLines() {
    let partial = "";
    for await (const chunk of this.#child.stdout) {
      partial += decoder.decode(chunk, { stream: true });
      const parts = partial.split("\n");
      partial = parts.pop()!;
      if (parts.length > 0) {
        this.lines.push(...parts);
        this.#wake();
      }
    }
    if (partial) this.lines.push(partial);
    this.#wake();
  }

  async #readStderr() {
    for await (const chunk of this.#child.stderr) this.#stderr += decoder.decode(chunk);
  }
}

/**
 * Undo steps (unmount, detach a loop device, stop nbdfuse) run in reverse order of registration.
 * Every step runs even when an earlier one failed; the failures are reported together.
 */
export class CleanupStack {
  #steps: { what: string; undo: () => Promise<void> }[] = [];

  /** Registers `undo`; returns a function that runs it now (once) and forgets it. */
  defer(what: string, undo: () => Promise<void>): () => Promise<void> {
    const step = { what, undo };
    this.#steps.push(step);
    return async () => {
      const i = this.#steps.indexOf(step);
      if (i < 0) return;
      this.#steps.splice(i, 1);
      await undo();
    };
  }

  /**
   * Runs every remaining step, newest first; throws once with every failure, unless `failing`
   * (an error is already on its way out): then the failures are logged so they cannot hide it.
   */
  async run(failing = false): Promise<void> {
    const failures: string[] = [];
    for (const step of this.#steps.splice(0).reverse()) {
      try {
        await step.undo();
      } catch (err) {
        failures.push(`${step.what}: ${(err as Error).message}`);
      }
    }
    if (failures.length === 0) return;
    const err = new Error(`Cleanup failed:\n${failures.join("\n")}`);
    if (failing) console.error(err.message);
    else throw err;
  }
}
