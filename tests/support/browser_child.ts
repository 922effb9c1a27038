/**
 * A headless Chromium for tests, in a process of its own: playwright-core under Deno reads
 * /proc/sys (a WSL probe) and the home directory when it loads, which Deno allows only with
 * --allow-all, and `deno task test` does not run with it. browser_driver.ts starts this script
 * with -A and speaks to it in lines of JSON: one request a line on stdin, one answer on stdout.
 *
 *   {"op":"open","url":U,"width":W,"height":H} · {"op":"eval","expr":E} · {"op":"screenshot",
 *   "path":P} · {"op":"errors"} → {"ok":true,"value":V} or {"ok":false,"error":MESSAGE}
 *
 * It drives only the browser given as its first argument, never a downloaded one; it exits when
 * stdin closes, closing the browser first.
 */
import { chromium, type Page } from "playwright-core";
import { linesOf } from "./browser_driver.ts";

const executablePath = Deno.args[0];
const browser = await chromium.launch({ executablePath, headless: true, args: ["--no-sandbox"] });
let page: Page | undefined;
const pageErrors: string[] = [];
const encoder = new TextEncoder();

async function handle(req: Record<string, unknown>): Promise<unknown> {
  switch (req.op) {
    case "open":
      page = await browser.newPage({
        viewport: { width: Number(req.width ?? 1200), height: Number(req.height ?? 900) },
      });
      page.on("pageerror", (err) => pageErrors.push(err.message));
      await page.goto(String(req.url));
      return null;
    case "eval":
      return await page!.evaluate(String(req.expr));
    case "screenshot":
      await page!.screenshot({ path: String(req.path), fullPage: true });
      return null;
    case "errors":
      return pageErrors;
    default:
      throw new Error(`Unknown op ${JSON.stringify(req.op)}`);
  }
}

try {
  for await (const line of linesOf(Deno.stdin.readable)) {
    if (line.trim() === "") continue;
    let answer: unknown;
    try {
      answer = { ok: true, value: await handle(JSON.parse(line)) };
    } catch (err) {
      answer = { ok: false, error: (err as Error).message };
    }
    await Deno.stdout.write(encoder.encode(JSON.stringify(answer) + "\n"));
  }
} finally {
  await browser.close();
}
