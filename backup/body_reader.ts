/**
 * Reads a request body into one buffer without letting it grow past a bound: a declared
 * Content-Length over the bound is refused before reading, and a streamed body is counted as it
 * arrives, so a client cannot make the backup buffer more than `bytesMax`.
 */
import { badRequest, tooLarge } from "../src/errors.ts";

/** First buffer for a body of unknown length; doubled as it fills, up to the bound. */
const bodyChunkBytesStart = 64 * 1024;

/** The body of `req`, at most `bytesMax` bytes; throws 413 past that, 400 when cut short. */
export async function readBodyBounded(req: Request, bytesMax: number): Promise<Uint8Array> {
  const declared = req.headers.get("content-length");
  let expected: number | undefined;
  if (declared !== null) {
    expected = Number(declared);
    if (!/^\d+$/.test(declared) || !Number.isSafeInteger(expected)) {
      throw badRequest(`Content-Length "${declared}" is not a byte count`);
    }
    if (expected > bytesMax) {
      throw tooLarge(`Body of ${expected} bytes exceeds batchBytesMax ${bytesMax}`);
    }
  }
  if (!req.body) return new Uint8Array(0);
  let buf = new Uint8Array(expected ?? Math.min(bytesMax, bodyChunkBytesStart));
  let size = 0;
  for await (const chunk of req.body) {
    if (size + chunk.length > bytesMax) {
      throw tooLarge(
        `Body exceeds batchBytesMax ${bytesMax} (${size + chunk.length} bytes so far)`,
      );
    }
    if (size + chunk.length > buf.length) {
      if (expected !== undefined) {
        throw badRequest(`Body is longer than its Content-Length ${expected}`);
      }
      const grown = new Uint8Array(
        Math.min(bytesMax, Math.max(size + chunk.length, buf.length * 2)),
      );
      grown.set(buf.subarray(0, size));
      buf = grown;
    }
    buf.set(chunk, size);
    size += chunk.length;
  }
  if (expected !== undefined && size !== expected) {
    throw badRequest(`Body ended after ${size} of its ${expected} bytes`);
  }
  // A streamed body keeps its exact size: the journal holds it in memory until applied.
  return size === buf.length ? buf : buf.slice(0, size);
}
