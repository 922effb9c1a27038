/**
 * The shared token: one constant-time comparison, and where a command finds the token
 * (`--token`, `--token-file`, TRACKMIRROR_TOKEN) with errors that name the flag and the path.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  readTokenFile,
  resolveToken,
  tokenEnvName,
  tokenFileBytesMax,
  tokenMatcher,
  tokenMatches,
} from "../src/token.ts";

function throwsRange(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof RangeError, `expected a RangeError, got ${err}`);
    assert.match(err.message, message);
    return true;
  });
}

Deno.test("tokenMatches accepts only the very same token", async (t) => {
  const cases: [string, string | undefined, boolean][] = [
    ["the same token", "s3cret", true],
    ["a wrong token of the same length", "s3crex", false],
    ["a prefix of the token", "s3cre", false],
    ["the token with more after it", "s3cret!", false],
    ["the token with a trailing space", "s3cret ", false],
    ["the empty string", "", false],
    ["no token at all", undefined, false],
  ];
  // One matcher answers every case in turn, as a guarded service's does for every request.
  const matcher = tokenMatcher("s3cret");
  for (const [name, presented, expected] of cases) {
    await t.step(name, () => {
      assert.equal(tokenMatches(presented, "s3cret"), expected);
      assert.equal(matcher(presented), expected);
    });
  }
  assert.ok(tokenMatches("ä/ %?#x", "ä/ %?#x"));
  assert.ok(!tokenMatches(undefined, ""), "absent never matches, not even an empty token");
});

Deno.test("resolveToken prefers --token, then --token-file, then TRACKMIRROR_TOKEN", async () => {
  const dir = await Deno.makeTempDir({ prefix: "token_test_" });
  try {
    const file = join(dir, "token");
    await Deno.writeTextFile(file, "  from-file \nsecond line is ignored\n");
    const env = (name: string) => name === tokenEnvName ? "from-env" : undefined;
    assert.equal(resolveToken({ token: "from-flag" }, env), "from-flag");
    assert.equal(resolveToken({ "token-file": file }, env), "from-file");
    assert.equal(resolveToken({}, env), "from-env");
    assert.equal(resolveToken({}, () => undefined), undefined);
    assert.equal(resolveToken({}, () => ""), undefined, "an empty variable means no token");
    assert.equal(resolveToken({ token: " spaced\t" }, env), "spaced", "outer blanks go");
    assert.equal(resolveToken({}, () => " spaced\n"), "spaced");
    throwsRange(() => resolveToken({}, () => "  "), /^TRACKMIRROR_TOKEN " {2}" is blank/);
    await Deno.writeTextFile(file, "crlf-token\r\n");
    assert.equal(readTokenFile(file), "crlf-token");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("token flags misused: a RangeError naming the flag and the path, never the token", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "token_test_" });
  try {
    const empty = join(dir, "empty");
    await Deno.writeTextFile(empty, "\n  \n");
    const blankFirst = join(dir, "blank-first");
    await Deno.writeTextFile(blankFirst, "\nsecret-on-line-2\n");
    const huge = join(dir, "huge");
    await Deno.writeFile(huge, new Uint8Array(tokenFileBytesMax + 1).fill(0x61));
    const binary = join(dir, "binary");
    await Deno.writeFile(binary, new Uint8Array([0xff, 0xfe, 0x41]));
    const missing = join(dir, "missing");
    const cases: [string, Parameters<typeof resolveToken>[0], RegExp][] = [
      [
        "both flags",
        { token: "t0p", "token-file": empty },
        /^--token and --token-file ".*empty" were both given/,
      ],
      ["a blank --token", { token: " " }, /^--token " " is blank/],
      ["an empty --token", { token: "" }, /^--token "" is blank/],
      ["a missing file", { "token-file": missing }, /^--token-file ".*missing" cannot be read/],
      ["a directory", { "token-file": dir }, /^--token-file ".*" cannot be read: .*not a regular/],
      ["an empty file", { "token-file": empty }, /^--token-file ".*empty" is empty/],
      [
        "a blank first line",
        { "token-file": blankFirst },
        /^--token-file ".*blank-first" is empty/,
      ],
      ["a huge file", { "token-file": huge }, /^--token-file ".*huge" .*more than 65536/],
      [
        "a file that is not text",
        { "token-file": binary },
        /^--token-file ".*binary" is not UTF-8/,
      ],
    ];
    for (const [name, flags, message] of cases) {
      await t.step(name, () => {
        throwsRange(() => resolveToken(flags, () => "from-env"), message);
        try {
          resolveToken(flags, () => "from-env");
        } catch (err) {
          assert.doesNotMatch((err as Error).message, /t0p|secret-on-line-2/);
        }
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
