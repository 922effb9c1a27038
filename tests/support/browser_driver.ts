/**
 * Drives a headless Chromium from a test through browser_child.ts (a `deno run -A` child, see
 * there why). One request at a time; `close` ends the child and waits for it (and so its
 * browser) to exit.
 */

/** Where Debian's chromium package puts the browser. */
export const chromiumPath = "/usr/bin/chromium";

const childScript = new URL("./browser_child.ts", import.meta.url).pathname;
const encoder = new TextEncoder();

/** Throws, naming what to install, when there is no Chromium (a test must fail, not skip). */
export async function requireChromium(path = chromiumPath): Promise<string> {
  try {
    await Deno.stat(path);
    return path;
  } catch {
    throw new Error(
      `No Chromium at ${path}: the dashboard's browser test needs Debian's chromium ` +
        `(apt-get install -y chromium; .ci/run installs it). It never downloads a browser.`,
    );
  }
}

export class BrowserDriver {
  readonly #child: Deno.ChildProcess;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;
  readonly #answers: AsyncGenerator<string>;
  #closed = false;

  private constructor(child: Deno.ChildProcess) {
    this.#child = child;
    this.#stdin = child.stdin.getWriter();
    this.#answers = linesOf(child.stdout);
  }

  /** Starts the child over the browser at `executablePath`. */
  static start(executablePath: string): BrowserDriver {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--quiet", childScript, executablePath],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    return new BrowserDriver(child);
  }

  async #request<T>(req: Record<string, unknown>): Promise<T> {
    await this.#stdin.write(encoder.encode(JSON.stringify(req) + "\n"));
    const { value, done } = await this.#answers.next();
    if (done) throw new Error(`The browser process ended before answering ${req.op}`);
    const answer = JSON.parse(value) as { ok: boolean; value?: T; error?: string };
    if (!answer.ok) throw new Error(`Browser ${req.op}: ${answer.error}`);
    return answer.value as T;
  }

  /** Opens a page at `url` with the given viewport. */
  open(url: string, width = 1200, height = 900): Promise<void> {
    return this.#request({ op: "open", url, width, height });
  }

  /** Evaluates a JavaScript expression in the page; returns its (JSON) value. */
  eval<T>(expr: string): Promise<T> {
    return this.#request({ op: "eval", expr });
  }

  /** Saves a full-page PNG at `path`. */
  screenshot(path: string): Promise<void> {
    return this.#request({ op: "screenshot", path });
  }

  /** Uncaught errors of the page's scripts so far. */
  pageErrors(): Promise<string[]> {
    return this.#request({ op: "errors" });
  }

  /** Closes the browser and waits for the child to exit (SIGKILL if it does not). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#stdin.close().catch(() => {});
    const timer = setTimeout(() => this.#child.kill("SIGKILL"), 10_000);
    try {
      for await (const _ of this.#answers) { /* drain */ }
      await this.#child.status;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** The lines of a byte stream (without their ends). */
export async function* linesOf(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let text = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    text += chunk;
    let end: number;
    while ((end = text.indexOf("\n")) >= 0) {
      yield text.slice(0, end);
      text = text.slice(end + 1);
    }
  }
  if (text !== "") yield text;
}
