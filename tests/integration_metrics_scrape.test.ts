/**
 * Issue 11 item 3: the metric families an operator needs, scraped from the real tracker, backup
 * and host agent through a backup outage and its repair, parsed by an independent parser
 * (parse-prometheus-text-format) and checked line by line. Values are checked against each other
 * and against what the test did (writes made, the backup killed), never against timings.
 */
import assert from "node:assert/strict";
import { startSystem } from "../harness/system.ts";
import { Metrics } from "../src/metrics.ts";
import { version } from "../src/version.ts";
import { type Family, parseExposition } from "./support/prometheus.ts";

type Type = Family["type"];

/** Every family each service must serve, with its type. */
const required: Record<"tracker" | "backup" | "host", Record<string, Type>> = {
  tracker: {
    trackmirror_tracker_build_info: "GAUGE",
    trackmirror_tracker_volume_dirty_regions: "GAUGE",
    trackmirror_tracker_volume_dirty_bytes: "GAUGE",
    trackmirror_tracker_volume_oldest_mark_age_seconds: "GAUGE",
    trackmirror_tracker_commit_seconds: "HISTOGRAM",
    trackmirror_tracker_regions_marked_total: "COUNTER",
  },
  backup: {
    trackmirror_backup_build_info: "GAUGE",
    trackmirror_backup_journal_pending_bytes: "GAUGE",
    trackmirror_backup_volume_lag_bytes: "GAUGE",
    trackmirror_backup_volume_lag_records: "GAUGE",
    trackmirror_backup_volume_lag_seconds: "GAUGE",
    trackmirror_backup_journal_sync_seconds: "HISTOGRAM",
    trackmirror_backup_journal_sync_records: "HISTOGRAM",
    trackmirror_backup_records_acknowledged_total: "COUNTER",
  },
  host: {
    trackmirror_host_build_info: "GAUGE",
    trackmirror_host_component_up: "GAUGE",
    trackmirror_host_component_state: "GAUGE",
    trackmirror_host_volume_mode: "GAUGE",
    trackmirror_host_volume_dirty_regions: "GAUGE",
    trackmirror_host_volume_dirty_bytes: "GAUGE",
    trackmirror_host_volume_backup_unacked_bytes: "GAUGE",
    trackmirror_host_volume_backup_unacked_seconds: "GAUGE",
    trackmirror_host_writes_total: "COUNTER",
    trackmirror_host_backup_ack_seconds: "HISTOGRAM",
    trackmirror_host_tracker_mark_seconds: "HISTOGRAM",
    trackmirror_host_resync_running: "GAUGE",
    trackmirror_host_resync_done_bytes: "GAUGE",
    trackmirror_host_resync_planned_bytes: "GAUGE",
  },
};

/** prom-client's process defaults every service must carry, with sane values. */
const processFamilies: Record<string, Type> = {
  process_cpu_seconds_total: "COUNTER",
  process_start_time_seconds: "GAUGE",
  process_resident_memory_bytes: "GAUGE",
};

const sampleLine = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/;

/**
 * Parses a scrape and checks the exposition itself: every sample line has the sample grammar and
 * belongs to a family with HELP and TYPE, no family is declared twice, and every family this
 * service must serve is there with its type.
 */
function checkExposition(text: string, want: Record<string, Type>): Map<string, Family> {
  const families = parseExposition(text);
  const byName = new Map(families.map((f) => [f.name, f]));
  assert.equal(byName.size, families.length, "no family appears twice");
  const helped = new Set([...text.matchAll(/^# HELP (\S+) \S/gm)].map((m) => m[1]));
  const typed = new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1], m[2]]));
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = sampleLine.exec(line);
    assert.ok(m, `sample line parses: ${line}`);
    // A float, or NaN / ±Inf (prom-client prints NaN as "Nan": Go's ParseFloat, which
    // Prometheus uses, takes any case; only nodejs_eventloop_lag_* before their first sample).
    assert.ok(
      !Number.isNaN(Number(m[3])) || (/^nan$/i.test(m[3]) && m[1].startsWith("nodejs_")),
      `sample value is a number: ${line}`,
    );
    const family = typed.has(m[1]) ? m[1] : m[1].replace(/_(bucket|sum|count)$/, "");
    assert.ok(typed.has(family), `sample ${m[1]} has a # TYPE`);
    assert.ok(helped.has(family), `sample ${m[1]} has a # HELP`);
  }
  for (const [name, type] of Object.entries({ ...want, ...processFamilies })) {
    const f = byName.get(name);
    assert.ok(f, `family ${name} is served`);
    assert.equal(f.type, type, `type of ${name}`);
    assert.ok(f.help.length > 0, `${name} has a HELP text`);
  }
  return byName;
}

/** The value of the one sample of `name` whose labels include `labels`. */
function value(fams: Map<string, Family>, name: string, labels: Record<string, string> = {}) {
  const matching = fams.get(name)!.metrics.filter((m) =>
    Object.entries(labels).every(([k, v]) => m.labels?.[k] === v)
  );
  assert.equal(matching.length, 1, `one sample of ${name} ${JSON.stringify(labels)}`);
  const m = matching[0];
  return Number(m.value ?? m.count);
}

/**
 * A histogram's `_count` and `_sum` for `labels`, read from the text: the parser folds labelled
 * histograms into one sample and loses them (0 when the label set was never observed).
 */
function histogram(text: string, name: string, labels: Record<string, string> = {}) {
  const read = (suffix: string) => {
    for (const line of text.split("\n")) {
      const m = sampleLine.exec(line);
      if (!m || m[1] !== `${name}_${suffix}`) continue;
      const got = Object.fromEntries(
        [...(m[2] ?? "").matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]),
      );
      if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[3]);
    }
    return 0;
  };
  return { count: read("count"), sum: read("sum") };
}

function checkProcess(fams: Map<string, Family>, service: string): void {
  assert.ok(value(fams, "process_resident_memory_bytes") > 0, `${service} resident memory`);
  assert.ok(value(fams, "process_cpu_seconds_total") > 0, `${service} CPU time`);
  const start = value(fams, "process_start_time_seconds");
  assert.ok(start > 1.6e9 && start <= Date.now() / 1000 + 1, `${service} start time ${start}`);
  const fds = fams.get("process_open_fds");
  if (fds) assert.ok(Number(fds.metrics[0].value) > 0, `${service} open fds`);
  const buildInfo = fams.get(`trackmirror_${service}_build_info`)!.metrics[0];
  assert.equal(buildInfo.labels?.version, version);
  assert.equal(buildInfo.value, "1");
}

Deno.test("every service's /metrics answers the operator's questions through an outage and its repair", async () => {
  const sys = await startSystem({ sizeBytes: 16 * 1024 * 1024 });
  const scrape = async (url: string, want: Record<string, Type>) => {
    const res = await fetch(`${url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    return Object.assign(checkExposition(text, want), { text });
  };
  const put = async (offset: number) => {
    const res = await fetch(`${sys.host.url}/v1/volumes/vol0/data?offset=${offset}`, {
      method: "PUT",
      body: new Uint8Array(4096).fill(offset / 4096 % 251),
    });
    await res.body?.cancel();
    assert.ok(res.ok, `write at ${offset}: ${res.status}`);
  };
  try {
    await sys.waitMirroring();
    await put(0);
    await put(1 << 20); // mirrored

    const backup = await scrape(sys.backup.url, required.backup);
    checkProcess(backup, "backup");
    const acknowledged = value(backup, "trackmirror_backup_records_acknowledged_total");
    assert.ok(acknowledged >= 2, `records acknowledged ${acknowledged}`);
    const syncs = histogram(backup.text, "trackmirror_backup_journal_sync_seconds");
    assert.ok(syncs.count >= 1 && syncs.sum > 0, `journal syncs ${JSON.stringify(syncs)}`);
    // Every acknowledged record was made durable by exactly one observed group sync.
    assert.equal(
      histogram(backup.text, "trackmirror_backup_journal_sync_records").sum,
      acknowledged,
    );
    for (const name of ["bytes", "records", "seconds"]) {
      assert.ok(value(backup, `trackmirror_backup_volume_lag_${name}`, { volume: "vol0" }) >= 0);
    }

    await sys.backup.kill();
    await put(4 << 20);
    await put(8 << 20); // tracked

    const host = await scrape(sys.host.url, required.host);
    checkProcess(host, "host");
    const writes = (outcome: string) =>
      value(host, "trackmirror_host_writes_total", { volume: "vol0", outcome });
    assert.deepEqual([writes("backup"), writes("tracker"), writes("failed")], [2, 2, 0]);
    assert.equal(value(host, "trackmirror_host_component_up", { component: "backup" }), 0);
    assert.equal(value(host, "trackmirror_host_component_up", { component: "tracker" }), 1);
    assert.equal(
      value(host, "trackmirror_host_component_state", { component: "backup", state: "online" }),
      0,
    );
    const mode = (m: string) =>
      value(host, "trackmirror_host_volume_mode", { volume: "vol0", mode: m });
    assert.deepEqual([mode("mirroring"), mode("tracking"), mode("pass-through")], [0, 1, 0]);
    // One ack observed per write the backup acknowledged.
    assert.equal(
      histogram(host.text, "trackmirror_host_backup_ack_seconds").count,
      writes("backup"),
    );
    assert.ok(
      histogram(host.text, "trackmirror_host_tracker_mark_seconds", { kind: "dirty" }).count >= 1,
    );
    assert.ok(
      histogram(host.text, "trackmirror_host_tracker_mark_seconds", { kind: "activity" }).count >=
        1,
    );
    assert.equal(
      value(host, "trackmirror_host_volume_backup_unacked_bytes", { volume: "vol0" }),
      0,
    );

    const tracker = await scrape(sys.tracker.url, required.tracker);
    checkProcess(tracker, "tracker");
    const dirtyRegions = value(tracker, "trackmirror_tracker_volume_dirty_regions", {
      volume: "vol0",
    });
    const dirtyBytes = value(tracker, "trackmirror_tracker_volume_dirty_bytes", { volume: "vol0" });
    assert.ok(dirtyRegions >= 2, `dirty regions ${dirtyRegions}`);
    assert.equal(dirtyBytes, dirtyRegions * 64 * 1024);
    assert.equal(
      value(host, "trackmirror_host_volume_dirty_regions", { volume: "vol0" }),
      dirtyRegions,
    );
    assert.equal(
      value(host, "trackmirror_host_volume_dirty_bytes", { volume: "vol0" }),
      dirtyBytes,
    );
    assert.ok(
      value(tracker, "trackmirror_tracker_volume_oldest_mark_age_seconds", { volume: "vol0" }) >= 0,
    );
    assert.ok(histogram(tracker.text, "trackmirror_tracker_commit_seconds").count >= 1);
    // The tracker's own view answers the same as its API.
    const info = await (await fetch(`${sys.tracker.url}/v1/volumes/vol0`)).json();
    assert.deepEqual([info.dirtyRegions, info.dirtyBytes], [dirtyRegions, dirtyBytes]);

    await sys.restartBackup();
    await sys.waitMirroring();
    const repaired = await sys.reconstruct();
    assert.equal(repaired.code, 0, repaired.output);
    const after = await scrape(sys.host.url, required.host);
    assert.equal(value(after, "trackmirror_host_component_up", { component: "backup" }), 1);
    const resync = (name: string) =>
      value(after, `trackmirror_host_resync_${name}`, { volume: "vol0" });
    assert.equal(resync("planned_bytes"), dirtyBytes);
    assert.equal(resync("done_bytes"), dirtyBytes);
    assert.equal(resync("running"), 0);
    assert.equal(value(after, "trackmirror_host_volume_dirty_regions", { volume: "vol0" }), 0);
    const trackerAfter = await scrape(sys.tracker.url, required.tracker);
    assert.equal(
      value(trackerAfter, "trackmirror_tracker_volume_dirty_regions", { volume: "vol0" }),
      0,
    );
    checkProcess(await scrape(sys.backup.url, required.backup), "backup");
  } finally {
    await sys.stop();
  }
});

Deno.test("process defaults are real numbers under this process's permissions", async () => {
  // `deno task test` grants no --allow-all: Deno then refuses /proc/self, and prom-client's
  // Linux defaults would read 0; with -A they read procfs. Either way the numbers must be real.
  const fams = checkExposition(await new Metrics().render(), {});
  assert.ok(value(fams, "process_resident_memory_bytes") > 0);
  for (const name of ["process_open_fds", "process_virtual_memory_bytes", "process_heap_bytes"]) {
    const f = fams.get(name);
    if (f) assert.ok(Number(f.metrics[0].value) > 0, name);
  }
  assert.ok(!fams.has("nodejs_active_handles_total"), "Deno leaves it at 0: not served");
});
