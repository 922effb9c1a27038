import assert from "node:assert/strict";
import {
  commandHelp,
  helpOrVersion,
  parseCommand,
  sizeText,
  tokenFlagDocs,
} from "../src/command_help.ts";
import { version } from "../src/version.ts";

const command = {
  usage: "deno task demo [flags]",
  about: "A demo command.",
  flags: {
    port: { type: "string", value: "P", doc: "HTTP port, 0 to 65535", fallback: "8701" },
    "a-very-long-flag-name": {
      type: "string",
      value: "VALUE",
      doc: "a flag whose name does not fit the column, with a description long enough to wrap " +
        "onto a second line of the help",
    },
    peer: { type: "string", multiple: true, value: "URL", doc: "a peer" },
    quiet: { type: "boolean", doc: "say less" },
    ...tokenFlagDocs,
  },
  notes: "Exit codes: 0 fine.",
} as const;

Deno.test("help lists every flag of the table with its placeholder and default", () => {
  const help = commandHelp(command);
  assert.match(help, /^Usage: deno task demo \[flags\]\n {2}A demo command\.\n/);
  assert.match(help, /\n {2}--port P +HTTP port, 0 to 65535 \(default 8701\)\n/);
  assert.match(help, /\n {2}--peer URL +a peer; repeatable\n/);
  assert.match(help, /\n {2}--quiet +say less\n/);
  assert.match(help, /\n {2}--token T +shared bearer token/);
  assert.match(help, /\n {2}--token-file PATH +read the token/);
  assert.match(help, /\n {2}--help +print this help and exit\n {2}--version +print the version/);
  assert.match(help, /\n\nExit codes: 0 fine\.$/);
  for (const name of Object.keys(command.flags)) assert.match(help, new RegExp(`--${name}\\b`));
});

Deno.test("help wraps long descriptions under the flag column and keeps lines short", () => {
  const lines = commandHelp(command).split("\n");
  const at = lines.findIndex((l) => l === "  --a-very-long-flag-name VALUE");
  assert.ok(at > 0, "a flag too long for the column stands on its own line");
  assert.match(lines[at + 1], /^ {26}a flag whose name/);
  assert.match(lines[at + 2], /^ {26}\S/);
  for (const line of lines) assert.ok(line.length <= 100, `"${line}" is over 100 characters`);
});

Deno.test("--help wins over everything on the line, then --version; after -- neither counts", async (t) => {
  const help = () => "HELP";
  const cases: [string[], string | undefined][] = [
    [["--help"], "HELP"],
    [["-h"], "HELP"],
    [["--bogus", "--help"], "HELP"],
    [["--version", "--help"], "HELP"],
    [["--version"], `trackmirror ${version}`],
    [["--port", "1", "--version"], `trackmirror ${version}`],
    [["--port", "1"], undefined],
    [["--", "--help"], undefined],
  ];
  for (const [args, expected] of cases) {
    await t.step(args.join(" "), () => assert.equal(helpOrVersion(args, help), expected));
  }
});

Deno.test("parseCommand parses the table's flags and refuses others, naming them", () => {
  const values = parseCommand(["--port", "9", "--peer", "a", "--peer", "b", "--quiet"], command);
  assert.deepEqual({ ...values }, { port: "9", peer: ["a", "b"], quiet: true });
  assert.throws(
    () => parseCommand(["--nope"], command),
    (err: unknown) => err instanceof RangeError && /'--nope'/.test(err.message),
  );
});

Deno.test("sizeText writes a default exactly, in the largest binary unit that divides it", () => {
  assert.equal(sizeText(1024 ** 3), "1GiB");
  assert.equal(sizeText(64 * 1024 ** 2), "64MiB");
  assert.equal(sizeText(1536 * 1024), "1536KiB");
  assert.equal(sizeText(4096), "4KiB");
  assert.equal(sizeText(1000), "1000");
});

Deno.test("the version is one 0.x.0 string", () => {
  assert.match(version, /^0\.\d+\.0$/);
});
