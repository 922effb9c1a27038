/** The mirror-mode flags (issue 10): `--mirror [NAME=]journal|cycles` and `--cycle-interval`. */
import assert from "node:assert/strict";
import { parseCycleInterval, parseMirrorFlags } from "../host/mirror_spec.ts";
import { runScript } from "../harness/tools.ts";

const names = ["db0", "logs"];

Deno.test("--mirror sets every volume's mode, NAME=MODE one volume's, journal by default", async (t) => {
  const cases: [string[] | undefined, Record<string, string>][] = [
    [undefined, { db0: "journal", logs: "journal" }],
    [["cycles"], { db0: "cycles", logs: "cycles" }],
    [["logs=cycles"], { db0: "journal", logs: "cycles" }],
    [["cycles", "db0=journal"], { db0: "journal", logs: "cycles" }],
    [["db0=journal", "cycles"], { db0: "journal", logs: "cycles" }],
  ];
  for (const [values, want] of cases) {
    await t.step(JSON.stringify(values ?? []), () => {
      assert.deepEqual(Object.fromEntries(parseMirrorFlags(values, names)), want);
    });
  }
});

Deno.test("--mirror refuses a bad mode, an unknown volume and a mode given twice, naming the value", async (t) => {
  const cases: [string[], RegExp][] = [
    [["async"], /--mirror "async": mode "async" must be journal or cycles/],
    [["db0=fast"], /--mirror "db0=fast": mode "fast" must be journal or cycles/],
    [["vol9=cycles"], /--mirror "vol9=cycles": no volume "vol9" is given with --volume/],
    [
      ["db0=cycles", "db0=journal"],
      /--mirror "db0=journal": the mode of volume "db0" is given twice/,
    ],
    [["cycles", "journal"], /--mirror "journal": the mode of every volume is given twice/],
  ];
  for (const [values, message] of cases) {
    await t.step(values.join(" "), () => {
      assert.throws(() => parseMirrorFlags(values, names), message);
    });
  }
});

Deno.test("--cycle-interval takes ms, s, m or h from 100ms to 24h", async (t) => {
  const good: [string | undefined, number][] = [
    [undefined, 30_000],
    ["100ms", 100],
    ["500ms", 500],
    ["30s", 30_000],
    ["2m", 120_000],
    ["24h", 86_400_000],
  ];
  for (const [text, ms] of good) {
    await t.step(`${text} is ${ms} ms`, () => assert.equal(parseCycleInterval(text), ms));
  }
  for (const text of ["99ms", "25h", "30", "1.5s", "-1s", "soon", ""]) {
    await t.step(`"${text}" is refused`, () => {
      assert.throws(
        () => parseCycleInterval(text),
        new RegExp(`--cycle-interval "${text}" must be a duration`),
      );
    });
  }
});

Deno.test("host exits 2 naming a bad --mirror or --cycle-interval", async (t) => {
  const volume = ["--volume", "vol0=/nonexistent/never-created.img:1MiB"];
  const cases: [string[], RegExp][] = [
    [["--mirror", "vol1=cycles"], /--mirror "vol1=cycles": no volume "vol1"/],
    [["--mirror", "snap"], /--mirror "snap": mode "snap" must be journal or cycles/],
    [["--cycle-interval", "10ms"], /--cycle-interval "10ms" must be a duration/],
  ];
  for (const [args, message] of cases) {
    await t.step(args.join(" "), async () => {
      const out = await runScript("host/main.ts", [...volume, ...args]);
      assert.equal(out.code, 2, out.stderr);
      assert.match(out.stderr, message);
    });
  }
});
