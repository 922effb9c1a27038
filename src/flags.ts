/**
 * Command-line flag parsing over `node:util` parseArgs, with errors that name the bad flag or value.
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { parseSize } from "./extent.ts";

type Options = NonNullable<ParseArgsConfig["options"]>;

/** Parses `args` strictly; throws a RangeError naming an unknown flag or a missing value. */
export function parseFlags<T extends Options>(args: string[], options: T) {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: false }).values;
  } catch (err) {
    throw new RangeError((err as Error).message);
  }
}

/** Parses a TCP port: 0 (pick a free one) to 65535. */
export function parsePort(text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const port = Number(text);
  if (!/^\d+$/.test(text) || port > 65535) {
    throw new RangeError(`Port "${text}" must be a whole number from 0 to 65535`);
  }
  return port;
}

/**
 * Parses a byte-size flag (`64MiB`, `4096`) with the flag's name in the error:
 * `--region-bytes: Size "7x" is not a byte count ...`.
 */
export function parseSizeFlag(name: string, text: string): number {
  try {
    return parseSize(text);
  } catch (err) {
    throw new RangeError(`--${name}: ${(err as Error).message}`);
  }
}

/** Parses a positive whole number flag with its name in the error. */
export function parseCount(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n)) {
    throw new RangeError(`--${name} "${text}" must be a whole number`);
  }
  return n;
}

/** Parses a whole number flag bounded to `min` .. `max`, with its name and bounds in the error. */
export function parseCountBetween(
  name: string,
  text: string | undefined,
  fallback: number,
  min: number,
  max: number,
): number {
  const n = parseCount(name, text, fallback);
  if (n < min || n > max) {
    throw new RangeError(`--${name} "${text}" must be between ${min} and ${max}`);
  }
  return n;
}

/** Parses an http(s) URL flag, without a trailing slash. */
export function parseUrl(name: string, text: string | undefined, fallback: string): string {
  const value = text ?? fallback;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new RangeError(`--${name} "${value}" is not a URL`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new RangeError(`--${name} "${value}" must be an http:// or https:// URL`);
  }
  return value.replace(/\/+$/, "");
}

/**
 * Parses a comma-separated list of http(s) URLs (`--tracker URL[,URL...]`), each checked like
 * `parseUrl`; an empty entry, a duplicate (the same URL once normalized) or more than `max`
 * entries is refused naming the flag and the value.
 */
export function parseUrlList(
  name: string,
  text: string | undefined,
  fallback: string,
  max: number,
): string[] {
  const value = text ?? fallback;
  const parts = value.split(",").map((part) => part.trim());
  if (parts.length > max) {
    throw new RangeError(`--${name} "${value}" names ${parts.length} URLs; at most ${max}`);
  }
  const seen = new Map<string, string>();
  return parts.map((part, i) => {
    if (part === "") {
      throw new RangeError(`--${name} "${value}" has an empty entry (number ${i + 1})`);
    }
    const url = parseUrl(name, part, fallback);
    const key = new URL(url).href.replace(/\/+$/, "");
    const earlier = seen.get(key);
    if (earlier !== undefined) {
      throw new RangeError(`--${name} "${value}" names "${part}" twice (as "${earlier}" before)`);
    }
    seen.set(key, part);
    return url;
  });
}

/** Runs a command's `main`, printing a RangeError (bad flags) without a stack and exiting 2. */
export async function runMain(main: () => Promise<void>): Promise<void> {
  try {
    await main();
  } catch (err) {
    if (err instanceof RangeError) {
      console.error(`Error: ${err.message}`);
      Deno.exit(2);
    }
    console.error(`Error: ${err instanceof Error ? err.message : String(err)}`);
    Deno.exit(1);
  }
}
