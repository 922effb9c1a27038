/**
 * reconstruct's summary, against real processes: the rate is the bytes copied over the resync's own
 * time as the host reports it (not floored by the poll interval: polling every 3 s, a small copy
 * must not be reported as bytes / 3 s), and every rate is in IEC units (MiB/s), never MB/s.
 */
import assert from "node:assert/strict";
import { startSystem } from "../harness/system.ts";
import { averageRate } from "../host/resync/progress_display.ts";

const MiB = 1024 * 1024;

Deno.test("reconstruct's summary rate is the host's copy time, in MiB/s, whatever the polling", async () => {
  const sys = await startSystem({ sizeBytes: 16 * MiB });
  try {
    await sys.waitMirroring();
    await sys.backup.kill();
    const data = crypto.getRandomValues(new Uint8Array(64 * 1024));
    for (let i = 0; i < 16; i++) {
      const res = await fetch(`${sys.host.url}/v1/volumes/${sys.volume}/data?offset=${i * MiB}`, {
        method: "PUT",
        body: data,
      });
      await res.body?.cancel();
      assert.ok(res.ok, `write ${i} answered ${res.status}`);
    }
    const marked = await (await fetch(`${sys.tracker.url}/v1/volumes/${sys.volume}`)).json();
    assert.ok(marked.dirtyBytes >= 16 * 64 * 1024, "the outage's writes are marked");
    await sys.restartBackup();
    await sys.waitMirroring();

    const pollMs = 3000;
    const { code, output } = await sys.reconstruct(["--poll-ms", String(pollMs)]);
    assert.equal(code, 0, output);
    const job = await (await fetch(`${sys.host.url}/v1/volumes/${sys.volume}/resync`)).json();
    assert.equal(job.state, "done");
    const jobSeconds = (job.finishedAt - job.startedAt) / 1000;
    const summary = /(\d+) bytes copied \(.*\) in ([\d.]+) s \((.+?) copied\), ([\d.]+) s in all/
      .exec(output);
    assert.ok(summary, `a summary line:\n${output}`);
    const [, bytes, seconds, rate, wall] = summary;
    assert.equal(Number(bytes), job.bytesDone);
    assert.equal(Number(bytes), marked.dirtyBytes, "the marked regions were copied");
    assert.equal(seconds, jobSeconds.toFixed(2), "the copy time is the host's");
    assert.equal(rate, averageRate(job.bytesDone, jobSeconds));
    assert.ok(Number(wall) >= pollMs / 1000, "the wall time counts the poll interval");
    assert.doesNotMatch(output, /MB\/s/);
    assert.doesNotMatch(output, /100% 0\/0/);
  } finally {
    await sys.stop();
  }
});
