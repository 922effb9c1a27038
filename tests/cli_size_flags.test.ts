/**
 * Byte-size flags name themselves when their value is bad: exit 2, the message names the flag and
 * the value, and nothing is written — in particular `start --volume-size` is refused before any of
 * start's children runs or anything under `--data` is created.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runScript } from "../harness/tools.ts";
import { freePort } from "../harness/service_process.ts";

Deno.test("host exits 2 naming the flag of a bad size", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "trackmirror-size-flags-" });
  try {
    const volume = ["--volume", `vol0=${join(dir, "never-created.img")}:1MiB`];
    const cases: [string[], RegExp][] = [
      [["--volume", `vol1=${join(dir, "v1.img")}:12x`], /--volume ".*v1\.img:12x": Size "12x"/],
      [["--region-bytes", "7x"], /--region-bytes: Size "7x"/],
      [["--resync-bytes-per-sec", "zz"], /--resync-bytes-per-sec: Size "zz"/],
      [["--activity-unit-bytes", "3q"], /--activity-unit-bytes: Size "3q"/],
    ];
    for (const [args, message] of cases) {
      await t.step(args.join(" "), async () => {
        const out = await runScript("host/main.ts", [
          ...volume,
          ...args,
          "--port",
          `${freePort()}`,
          "--nbd-port",
          `${freePort()}`,
        ]);
        assert.equal(out.code, 2, out.stderr);
        assert.match(out.stderr, message);
      });
    }
    assert.deepEqual([...Deno.readDirSync(dir)], [], "no image was created");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("start refuses a bad --volume-size before it starts anything", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "trackmirror-start-size-" });
  try {
    const cases: [string, RegExp][] = [
      ["12x", /--volume-size: Size "12x" is not a byte count/],
      ["0", /--volume-size "0" must be more than 0 bytes/],
    ];
    for (const [size, message] of cases) {
      await t.step(size, async () => {
        const data = join(dir, "data");
        const ports = ["tracker", "backup", "host", "nbd", "link"].flatMap((
          name,
        ) => [`--${name}-port`, `${freePort()}`]);
        const out = await runScript("start.ts", [
          "--data",
          data,
          ...ports,
          "--volume-size",
          size,
        ]);
        assert.equal(out.code, 2, out.stdout + out.stderr);
        assert.match(out.stderr, message);
        assert.doesNotMatch(out.stdout, /listening/, "no child was started");
        await assert.rejects(Deno.stat(data), Deno.errors.NotFound, "--data was not created");
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
