import assert from "node:assert/strict";
import { run } from "../harness/tools.ts";
import {
  parseCount,
  parseCountBetween,
  parseFlags,
  parsePort,
  parseUrl,
  parseUrlList,
} from "../src/flags.ts";

const options = {
  port: { type: "string" },
  verbose: { type: "boolean" },
  peer: { type: "string", multiple: true },
} as const;

function throwsRange(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof RangeError, `expected a RangeError, got ${err}`);
    assert.match(err.message, message);
    return true;
  });
}

Deno.test("parseFlags reads string, boolean and repeated flags in both spellings", () => {
  const values = parseFlags(
    ["--port=8080", "--verbose", "--peer", "a", "--peer=b"],
    options,
  );
  assert.deepEqual({ ...values }, { port: "8080", verbose: true, peer: ["a", "b"] });
  assert.deepEqual({ ...parseFlags([], options) }, {});
});

Deno.test("parseFlags turns every misuse into a RangeError naming the flag", async (t) => {
  const cases: [string, string[], RegExp][] = [
    ["an unknown flag", ["--port", "1", "--bogus"], /'--bogus'/],
    ["an unknown short flag", ["-x"], /'-x'/],
    ["a missing value", ["--port"], /'--port <value>' argument missing/],
    ["a positional argument", ["serve"], /'serve'.*positional/],
    ["a value for a boolean", ["--verbose=yes"], /'--verbose' does not take an argument/],
  ];
  for (const [name, args, message] of cases) {
    await t.step(name, () => throwsRange(() => parseFlags(args, options), message));
  }
});

Deno.test("parsePort takes 0 to 65535 and names a bad value", async (t) => {
  await t.step("absent falls back", () => assert.equal(parsePort(undefined, 7000), 7000));
  for (const [text, port] of [["0", 0], ["80", 80], ["65535", 65535], ["08080", 8080]] as const) {
    await t.step(`"${text}"`, () => assert.equal(parsePort(text, 1), port));
  }
  for (
    const text of ["65536", "-1", "80.5", "", " 80", "0x50", "1e3", "http", "99999999999999999999"]
  ) {
    await t.step(`"${text}" rejected`, () => {
      assert.throws(
        () => parsePort(text, 1),
        new RangeError(`Port "${text}" must be a whole number from 0 to 65535`),
      );
    });
  }
});

Deno.test("parseCount takes whole numbers and names the flag and the value", async (t) => {
  await t.step("absent falls back", () => assert.equal(parseCount("batch", undefined, 64), 64));
  await t.step("a count", () => assert.equal(parseCount("batch", "128", 64), 128));
  await t.step("the largest safe count", () => {
    assert.equal(parseCount("batch", String(Number.MAX_SAFE_INTEGER), 1), Number.MAX_SAFE_INTEGER);
  });
  for (const text of ["-1", "1.5", "", "ten", "1e3", "9007199254740992"]) {
    await t.step(`"${text}" rejected`, () => {
      assert.throws(
        () => parseCount("batch", text, 64),
        new RangeError(`--batch "${text}" must be a whole number`),
      );
    });
  }
});

Deno.test("parseCountBetween keeps a count inside its bounds and names them", () => {
  assert.equal(parseCountBetween("poll-ms", undefined, 500, 10, 60000), 500);
  assert.equal(parseCountBetween("poll-ms", "10", 500, 10, 60000), 10);
  assert.equal(parseCountBetween("poll-ms", "60000", 500, 10, 60000), 60000);
  assert.throws(
    () => parseCountBetween("poll-ms", "0", 500, 10, 60000),
    new RangeError(`--poll-ms "0" must be between 10 and 60000`),
  );
  assert.throws(
    () => parseCountBetween("poll-ms", "60001", 500, 10, 60000),
    new RangeError(`--poll-ms "60001" must be between 10 and 60000`),
  );
  assert.throws(
    () => parseCountBetween("poll-ms", "soon", 500, 10, 60000),
    /must be a whole number/,
  );
});

Deno.test("parseUrl takes http(s) URLs without a trailing slash and names a bad one", async (t) => {
  const cases: [string | undefined, string][] = [
    [undefined, "http://127.0.0.1:7000"],
    ["http://10.0.0.2:7001/", "http://10.0.0.2:7001"],
    ["https://tracker.example/base//", "https://tracker.example/base"],
    ["http://[::1]:9", "http://[::1]:9"],
  ];
  for (const [text, url] of cases) {
    await t.step(String(text), () => {
      assert.equal(parseUrl("tracker-url", text, "http://127.0.0.1:7000/"), url);
    });
  }
  const bad: [string, RegExp][] = [
    ["localhost:7000", /^--tracker-url "localhost:7000" must be an http:\/\/ or https:\/\/ URL$/],
    ["127.0.0.1:7000", /^--tracker-url "127\.0\.0\.1:7000" is not a URL$/],
    ["ftp://x", /^--tracker-url "ftp:\/\/x" must be an http/],
    ["not a url", /^--tracker-url "not a url" is not a URL$/],
    ["", /^--tracker-url "" is not a URL$/],
  ];
  for (const [text, message] of bad) {
    await t.step(`"${text}" rejected`, () => {
      throwsRange(() => parseUrl("tracker-url", text, "http://127.0.0.1:7000"), message);
    });
  }
  await t.step("a bad fallback is named too", () => {
    throwsRange(
      () => parseUrl("backup-url", undefined, "nope"),
      /^--backup-url "nope" is not a URL$/,
    );
  });
});

Deno.test("runMain prints a bad flag without a stack and exits 2, other failures exit 1", async (t) => {
  const flags = new URL("../src/flags.ts", import.meta.url).href;
  const runThrowing = (thrown: string) => {
    const code = `import { runMain } from ${JSON.stringify(flags)};
await runMain(async () => { throw ${thrown}; });
console.log("not reached");`;
    return run(Deno.execPath(), ["eval", "--quiet", code]);
  };
  await t.step("a RangeError", async () => {
    const r = await runThrowing(
      `new RangeError('Port "x" must be a whole number from 0 to 65535')`,
    );
    assert.deepEqual(r, {
      code: 2,
      stdout: "",
      stderr: 'Error: Port "x" must be a whole number from 0 to 65535\n',
    });
  });
  await t.step("any other error", async () => {
    const r = await runThrowing(`new Error("Cannot open /nope")`);
    assert.deepEqual(r, { code: 1, stdout: "", stderr: "Error: Cannot open /nope\n" });
  });
});

Deno.test("parseUrlList splits --tracker on commas and refuses a bad, empty or repeated entry", async (t) => {
  const parse = (text: string | undefined) =>
    parseUrlList("tracker", text, "http://127.0.0.1:8701", 3);
  assert.deepEqual(parse(undefined), ["http://127.0.0.1:8701"]);
  assert.deepEqual(parse("http://a:1/,https://b:2"), ["http://a:1", "https://b:2"]);
  const cases: [string, string, RegExp][] = [
    ["not a URL", "http://a:1,b", /--tracker "b" is not a URL/],
    ["not http", "http://a:1,ftp://b", /--tracker "ftp:\/\/b" must be an http:\/\/ or https:\/\//],
    [
      "an empty entry",
      "http://a:1,,http://b:2",
      /--tracker "http:\/\/a:1,,http:\/\/b:2" has an empty entry \(number 2\)/,
    ],
    ["a trailing comma", "http://a:1,", /has an empty entry \(number 2\)/],
    [
      "a duplicate",
      "http://a:1,http://b:2,http://a:1/",
      /names "http:\/\/a:1\/" twice \(as "http:\/\/a:1" before\)/,
    ],
    ["a duplicate in another spelling", "http://A:1,http://a:1", /names "http:\/\/a:1" twice/],
    ["too many", "http://a:1,http://a:2,http://a:3,http://a:4", /names 4 URLs; at most 3/],
  ];
  for (const [name, text, message] of cases) {
    await t.step(name, () => throwsRange(() => parse(text), message));
  }
});
