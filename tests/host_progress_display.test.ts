import assert from "node:assert/strict";
import {
  averageRate,
  jobSeconds,
  progressLine,
  type ShownProgress,
} from "../host/resync/progress_display.ts";

const MiB = 1024 * 1024;

function progress(p: Partial<ShownProgress>): ShownProgress {
  return {
    volume: "vol0",
    state: "running",
    regionsTotal: 0,
    regionsDone: 0,
    bytesTotal: 0,
    bytesDone: 0,
    bytesPerSec: 0,
    etaSeconds: null,
    startedAt: 1_000,
    finishedAt: null,
    ...p,
  };
}

Deno.test("a job's first frame, before its size is known, shows 0% starting, not 100% 0/0", async (t) => {
  const first = progress({});
  await t.step("terminal", () => {
    const line = progressLine(first, true);
    assert.match(line, /^vol0 \[-{30}\] {3}0% starting$/);
    assert.doesNotMatch(line, /100%|0\/0/);
  });
  await t.step("log", () => assert.equal(progressLine(first, false), "vol0: starting"));
});

Deno.test("progress lines show a fraction of the known size and IEC rates", async (t) => {
  await t.step("half way", () => {
    const line = progressLine(
      progress({
        regionsTotal: 32,
        regionsDone: 16,
        bytesTotal: 2 * MiB,
        bytesDone: MiB,
        bytesPerSec: 55 * MiB,
        etaSeconds: 1,
      }),
      true,
    );
    assert.match(line, / 50% 16\/32 regions, 1\.00 MiB\/2\.00 MiB 55\.0 MiB\/s ETA 1s$/);
  });
  await t.step("a finished job with nothing to copy is 100%", () => {
    const line = progressLine(progress({ state: "done", finishedAt: 1_001 }), true);
    assert.match(line, /\[#{30}\] 100% 0\/0 regions/);
  });
  await t.step("no decimal megabytes anywhere", () => {
    const line = progressLine(progress({ bytesTotal: MiB, bytesPerSec: 1e6 }), false);
    assert.match(line, /977 KiB\/s$/);
    assert.doesNotMatch(line, /MB\/s/);
  });
});

Deno.test("the summary rate is the bytes over the jobs' own time, not the caller's", () => {
  const jobs = [
    progress({ state: "done", startedAt: 10_000, finishedAt: 10_500, bytesDone: 20 * MiB }),
    undefined, // a volume whose job never started
    progress({ state: "done", startedAt: 50_000, finishedAt: 50_500, bytesDone: 35 * MiB }),
    progress({ state: "failed", startedAt: null, finishedAt: null }),
  ];
  const seconds = jobSeconds(jobs);
  assert.equal(seconds, 1);
  assert.equal(averageRate(55 * MiB, seconds), "55.0 MiB/s");
  assert.equal(averageRate(MiB, 0), "1000 MiB/s", "an instant job is floored at 1 ms");
});
