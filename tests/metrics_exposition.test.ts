/**
 * Every service's /metrics, scraped from the real processes after a mirrored and a tracked write,
 * parses with an independent exposition parser and carries labels as data.
 */
import assert from "node:assert/strict";
import { startSystem } from "../harness/system.ts";
import { family, parseExposition } from "./support/prometheus.ts";

Deno.test("tracker, backup and host serve valid Prometheus text with labels as data", async () => {
  const sys = await startSystem({ sizeBytes: 8 * 1024 * 1024 });
  try {
    const put = (offset: number) =>
      fetch(`${sys.host.url}/v1/volumes/vol0/data?offset=${offset}`, {
        method: "PUT",
        body: new Uint8Array(4096).fill(7),
      }).then((r) => r.body?.cancel());
    await sys.waitMirroring();
    await put(0); // mirrored
    await sys.backup.kill();
    await put(1 << 20); // tracked
    const scrape = async (url: string) => {
      const res = await fetch(`${url}/metrics`);
      assert.equal(res.status, 200);
      return parseExposition(await res.text());
    };

    const host = await scrape(sys.host.url);
    const writes = family(host, "trackmirror_host_writes_total");
    const byOutcome = Object.fromEntries(
      writes.metrics.filter((m) => m.labels?.volume === "vol0").map((
        m,
      ) => [m.labels?.outcome, Number(m.value)]),
    );
    assert.deepEqual(byOutcome, { backup: 1, tracker: 1, failed: 0 });
    assert.equal(family(host, "trackmirror_host_backup_up").metrics[0].value, "0");
    family(host, "process_cpu_seconds_total");

    const tracker = await scrape(sys.tracker.url);
    assert.ok(
      Number(family(tracker, "trackmirror_tracker_regions_marked_total").metrics[0].value) >= 1,
    );

    await sys.restartBackup();
    const backup = await scrape(sys.backup.url);
    family(backup, "trackmirror_backup_journal_pending_bytes");
    family(backup, "trackmirror_backup_records_applied_total");
  } finally {
    await sys.stop();
  }
});
