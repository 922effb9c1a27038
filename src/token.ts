/**
 * The shared secret every trackmirror service and tool may be given: where it comes from
 * (`--token`, `--token-file PATH`, or `TRACKMIRROR_TOKEN`) and the one way it is compared.
 *
 * Comparison hashes both sides with SHA-256 first and compares the digests with
 * `timingSafeEqual`, so neither the time taken nor an early length mismatch tells a guesser how
 * much of a candidate was right, or how long the real token is. Every check (HTTP bearer, NBD
 * export name, link HELLO) goes through `tokenMatches` (or `tokenMatcher`, its digest of the
 * expected token taken once).
 *
 * A file or the environment keeps the token out of `ps`; `--token` stays for compatibility.
 */
import { createHash, timingSafeEqual } from "node:crypto";

/** The environment variable every command reads when neither flag is given. */
export const tokenEnvName = "TRACKMIRROR_TOKEN";

/** Longest token file read, in bytes: a token is one short line, never a whole file. */
export const tokenFileBytesMax = 64 * 1024;

/** The parseFlags options for the two token flags; spread them into a command's options. */
export const tokenFlagOptions = {
  token: { type: "string" },
  "token-file": { type: "string" },
} as const;

const digest = (text: string): Uint8Array => createHash("sha256").update(text, "utf8").digest();

/**
 * Whether `presented` is `expected`, in time that depends on neither (beyond hashing their
 * lengths). An absent `presented` never matches.
 */
export function tokenMatches(presented: string | undefined, expected: string): boolean {
  return tokenMatcher(expected)(presented);
}

/**
 * `tokenMatches` against one `expected`, whose digest is taken once: a guarded HTTP service checks
 * every request, and a SHA-256 through `node:crypto` costs about 7 µs here.
 */
export function tokenMatcher(expected: string): (presented: string | undefined) => boolean {
  const expectedDigest = digest(expected);
  return (presented) => {
    // Hash even when nothing was presented, so a missing token costs what a wrong one does.
    const ok = timingSafeEqual(digest(presented ?? ""), expectedDigest);
    return ok && presented !== undefined;
  };
}

/** What the token flags of one command were given. */
export interface TokenSources {
  token?: string;
  "token-file"?: string;
}

/**
 * The token a command runs with, trimmed (HTTP drops a header's outer whitespace, so a token
 * with any could never match): `--token`, else the first line of `--token-file`, else
 * `TRACKMIRROR_TOKEN`, else none (an empty variable is none, as it always was). Both flags
 * together, an unreadable or empty file, or a blank `--token` or variable is a RangeError naming
 * the flag or variable (never the token itself).
 */
export function resolveToken(
  flags: TokenSources,
  env: (name: string) => string | undefined = (name) => Deno.env.get(name),
): string | undefined {
  const file = flags["token-file"];
  if (flags.token !== undefined && file !== undefined) {
    throw new RangeError(`--token and --token-file "${file}" were both given: give one`);
  }
  if (flags.token !== undefined) {
    const token = flags.token.trim();
    if (token === "") throw new RangeError(`--token ${JSON.stringify(flags.token)} is blank`);
    return token;
  }
  if (file !== undefined) return readTokenFile(file);
  const fromEnv = env(tokenEnvName);
  if (fromEnv === undefined || fromEnv === "") return undefined;
  const token = fromEnv.trim();
  if (token === "") {
    throw new RangeError(`${tokenEnvName} ${JSON.stringify(fromEnv)} is blank: unset it or set it`);
  }
  return token;
}

/** The first line of `path`, trimmed; a RangeError naming `--token-file` and `path` otherwise. */
export function readTokenFile(path: string): string {
  let bytes: Uint8Array;
  try {
    const stat = Deno.statSync(path);
    if (!stat.isFile) throw new Error("it is not a regular file");
    if (stat.size > tokenFileBytesMax) {
      throw new Error(`it holds ${stat.size} bytes, more than ${tokenFileBytesMax}`);
    }
    bytes = Deno.readFileSync(path);
  } catch (err) {
    throw new RangeError(`--token-file "${path}" cannot be read: ${(err as Error).message}`);
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new RangeError(`--token-file "${path}" is not UTF-8 text`);
  }
  const token = text.split(/\r?\n/, 1)[0].trim();
  if (token === "") {
    throw new RangeError(`--token-file "${path}" is empty: its first line must hold the token`);
  }
  return token;
}
