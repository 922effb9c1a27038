/**
 * Small JSON records (generation sidecars, issue 9) written so a crash leaves either the old file
 * or the new one, never a torn mix: write a temporary file beside it, fsync it, rename it over the
 * old one, fsync the directory (so the rename itself is durable).
 */
import { dirname } from "node:path";

/** Largest JSON record read or written this way: they are a few hundred bytes. */
export const atomicJsonBytesMax = 64 * 1024;

/** Suffix of the temporary file a write goes through. */
export const atomicTmpSuffix = ".tmp";

/** Writes `value` as JSON to `path` atomically and durably (see the file comment). */
export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  const bytes = new TextEncoder().encode(JSON.stringify(value, null, 2) + "\n");
  if (bytes.length > atomicJsonBytesMax) {
    throw new RangeError(
      `JSON record for "${path}" is ${bytes.length} bytes, over ${atomicJsonBytesMax}`,
    );
  }
  const tmp = path + atomicTmpSuffix;
  const file = await Deno.open(tmp, { write: true, create: true, truncate: true });
  try {
    let done = 0;
    while (done < bytes.length) done += await file.write(bytes.subarray(done));
    await file.sync();
  } finally {
    file.close();
  }
  await Deno.rename(tmp, path);
  const dir = await Deno.open(dirname(path) || ".", { read: true });
  try {
    await dir.sync();
  } finally {
    dir.close();
  }
}

/**
 * The parsed JSON at `path`, or undefined when there is no file. Throws, naming the path, when it
 * is not a regular file, too large, or not JSON.
 */
export async function readJsonFile(path: string): Promise<unknown> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
  if (!info.isFile) throw new Error(`"${path}" is not a regular file`);
  if (info.size > atomicJsonBytesMax) {
    throw new Error(`"${path}" is ${info.size} bytes, over ${atomicJsonBytesMax}`);
  }
  const text = await Deno.readTextFile(path);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new Error(`"${path}" is not JSON: ${(err as Error).message}`);
  }
}
