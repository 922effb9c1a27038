/**
 * The floors bench reads fio's JSON report (bench/floors_fio.ts). The sample below is fio-3.33's
 * real report of a 1 s run of the bench's F3 jobs (journal: 48 KiB + fdatasync; primary: paced
 * 4 KiB randwrite), cut to the fields around the ones read. If a fio upgrade moves or renames
 * one, these tests and the bench fail with the field named, rather than the bench printing zeros.
 */
import assert from "node:assert/strict";
import { fioJobFile, parseFioReport } from "../bench/floors_fio.ts";

const sample = {
  "fio version": "fio-3.33",
  jobs: [
    {
      jobname: "journal",
      error: 0,
      write: {
        io_bytes: 413368320,
        bw_bytes: 412955364,
        iops: 8401.598402,
        runtime: 1001,
        total_ios: 8410,
      },
      sync: {
        total_ios: 0,
        lat_ns: {
          min: 75342,
          max: 815783,
          mean: 100865.685412,
          stddev: 30148.445269,
          N: 8411,
          percentile: {
            "1.000000": 79360,
            "50.000000": 99840,
            "99.000000": 150528,
            "99.990000": 815104,
          },
        },
      },
      job_runtime: 1000,
      usr_cpu: 1.4,
      sys_cpu: 40.2,
      ctx: 17077,
    },
    {
      jobname: "primary",
      error: 0,
      write: {
        io_bytes: 65536000,
        bw_bytes: 65470529,
        iops: 15984.015984,
        runtime: 1001,
        total_ios: 16000,
      },
      sync: {
        total_ios: 0,
        lat_ns: { min: 0, max: 0, mean: 0.0, stddev: 0.0, N: 0 },
      },
      job_runtime: 1000,
      usr_cpu: 40.9,
      sys_cpu: 1.0,
      ctx: 1043,
    },
  ],
};

const close = (actual: number, expected: number) =>
  assert.ok(Math.abs(actual - expected) < 1e-9, `${actual} is not ${expected}`);

Deno.test("fio report: CPU per write and fdatasync latency come from a fio-3.33 report", () => {
  const report = parseFioReport(JSON.stringify(sample));
  assert.equal(report.version, "fio-3.33");
  assert.deepEqual(Object.keys(report.jobs), ["journal", "primary"]);

  const journal = report.jobs.journal;
  close(journal.writeIops, 8401.598402);
  close(journal.writeMBps, 412.955364);
  assert.equal(journal.writeIos, 8410);
  assert.equal(journal.runtimeMs, 1000);
  close(journal.cpuPercent, 41.6);
  // (usr_cpu + sys_cpu) / 100 × job_runtime / writes
  close(journal.cpuUsPerWrite, 0.416 * 1000 * 1000 / 8410);
  // The syncs are counted in lat_ns.N: fio 3.33 leaves sync.total_ios at 0.
  assert.deepEqual(journal.sync, { count: 8411, perSec: 8411, p50Us: 99.84, p99Us: 150.528 });

  const primary = report.jobs.primary;
  close(primary.cpuUsPerWrite, 0.419 * 1000 * 1000 / 16000);
  assert.equal(primary.sync, undefined, "a job that never synced has no sync figures");
});

Deno.test("fio report: a missing or renamed field fails with its name", async (t) => {
  const cases: [string, (s: typeof sample) => void, RegExp][] = [
    ["usr_cpu", (s) => delete (s.jobs[0] as Partial<typeof s.jobs[0]>).usr_cpu, /"usr_cpu"/],
    ["sys_cpu as text", (s) => Object.assign(s.jobs[1], { sys_cpu: "1.0" }), /"sys_cpu"/],
    [
      "job_runtime",
      (s) => delete (s.jobs[1] as Partial<typeof s.jobs[1]>).job_runtime,
      /job_runtime/,
    ],
    ["sync count", (s) => delete (s.jobs[0].sync.lat_ns as { N?: number }).N, /sync\.lat_ns\.N/],
    [
      "p99 key",
      (s) => {
        const pct = s.jobs[0].sync.lat_ns.percentile as Record<string, number>;
        pct["99.00"] = pct["99.000000"];
        delete pct["99.000000"];
      },
      /job "journal": field "sync\.lat_ns\.percentile\.99\.000000"/,
    ],
    ["write side", (s) => delete (s.jobs[1] as { write?: unknown }).write, /"write\.total_ios"/],
  ];
  for (const [name, damage, message] of cases) {
    await t.step(name, () => {
      const broken = structuredClone(sample);
      damage(broken);
      assert.throws(() => parseFioReport(JSON.stringify(broken)), message);
    });
  }
});

Deno.test("fio report: a job that ended in error, no jobs, or text are refused", () => {
  const failed = structuredClone(sample);
  failed.jobs[1].error = 5;
  assert.throws(() => parseFioReport(JSON.stringify(failed)), /job "primary" ended with error 5/);
  assert.throws(() => parseFioReport(JSON.stringify({ jobs: [] })), /has no jobs/);
  assert.throws(() => parseFioReport("fio: file layout\n{}"), /is not JSON/);
});

Deno.test("fio job file: a global section, then each job in order, bare keys for flags", () => {
  const text = fioJobFile(
    { ioengine: "psync", time_based: true, runtime: 4 },
    { journal: { filename: "journal.img", bs: 49152, fdatasync: 1 }, primary: { rw: "randwrite" } },
  );
  assert.equal(
    text,
    "[global]\nioengine=psync\ntime_based\nruntime=4\n\n" +
      "[journal]\nfilename=journal.img\nbs=49152\nfdatasync=1\n\n[primary]\nrw=randwrite\n",
  );
});
