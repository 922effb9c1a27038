/**
 * Resync against a real tracker (its app served in-process on a loopback port) and a recording
 * backup writer: what is copied, what is cleared, and that the host's cache of marks never claims
 * a region the tracker has cleared.
 */
import assert from "node:assert/strict";
import { openVolumeStack } from "../host/agent/volume_stack.ts";
import { systemClock } from "../src/clock.ts";
import { decodeRecord, isCycleMarker, type RecordKind } from "../src/journal_record.ts";
import { createTrackerApp } from "../tracker/service.ts";
import { TrackerClient } from "../tracker/client.ts";

const region = 64 * 1024;
const sizeBytes = 64 * region;

async function rig() {
  const kv = await Deno.openKv(":memory:");
  const service = createTrackerApp({ kv, clock: systemClock });
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    service.app.fetch,
  );
  const tracker = new TrackerClient(`http://127.0.0.1:${server.addr.port}`);
  await tracker.registerVolume("vol0", {
    sizeBytes,
    regionBytes: region,
    ownerHost: "host0",
    ownerUrl: "http://127.0.0.1:1",
  });
  const dir = await Deno.makeTempDir();
  const backup = { isOnline: false, markOffline() {} };
  /** What the backup received: offset → bytes. */
  const received: { offset: number; data: Uint8Array }[] = [];
  /** Cycle markers and copies in the order sent (issue 10). */
  const sent: (RecordKind | number)[] = [];
  const writer = {
    writeBatch(_v: string, body: Uint8Array) {
      for (let pos = 0; pos < body.length;) {
        const r = decodeRecord(body, pos);
        assert.ok(r.ok);
        sent.push(isCycleMarker(r.record.kind) ? r.record.kind : r.record.offset);
        if (isCycleMarker(r.record.kind)) {
          pos = r.next;
          continue;
        }
        received.push({ offset: r.record.offset, data: r.record.data.slice() });
        pos = r.next;
      }
      return Promise.resolve();
    },
  };
  const { primary, device: fork, marker, resync } = await openVolumeStack({
    volume: { name: "vol0", path: `${dir}/vol0.img`, sizeBytes },
    hostId: "host0",
    regionBytes: region,
    tracker,
    backup,
    writer,
    clock: systemClock,
    predictRegions: 0,
    activityRegionsMax: 0,
    resync: { chunkBytes: 2 * region },
  });
  return {
    tracker,
    marker,
    backup,
    fork,
    primary,
    resync,
    received,
    sent,
    async close() {
      await primary.close();
      await server.shutdown();
      await service.close();
      kv.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("resync copies exactly the marked regions and clears them", async () => {
  const r = await rig();
  try {
    await r.fork.write(3 * region + 10, new Uint8Array(100).fill(3)); // region 3
    await r.fork.write(10 * region - 5, new Uint8Array(10).fill(9)); // regions 9 and 10
    assert.equal((await r.tracker.getVolume("vol0")).dirtyRegions, 3);
    r.backup.isOnline = true;
    const done = await r.resync.start();
    assert.equal(done.state, "done", done.error ?? "");
    assert.equal(done.bytesDone, 3 * region);
    assert.deepEqual(r.received.map((x) => [x.offset, x.data.length]).sort((a, b) => a[0] - b[0]), [
      [3 * region, region],
      [9 * region, 2 * region],
    ]);
    const copied = r.received.find((x) => x.offset === 3 * region)!;
    assert.equal(copied.data[10], 3, "the copy holds the primary's bytes");
    assert.equal(r.sent[0], "cycle-begin", "the cycle opens before the first copy");
    assert.equal(r.sent.at(-1), "cycle-commit", "and commits after the last");
    assert.equal(done.cycle, "committed");
    assert.equal((await r.tracker.getVolume("vol0")).dirtyRegions, 0);
  } finally {
    await r.close();
  }
});

Deno.test("after resync clears a region, a new write to it while offline marks it again", async () => {
  const r = await rig();
  try {
    await r.fork.write(5 * region, new Uint8Array(10).fill(1));
    assert.ok(r.marker.cache.has(5), "the mark is cached");
    r.backup.isOnline = true;
    assert.equal((await r.resync.start()).state, "done");
    assert.equal((await r.tracker.getVolume("vol0")).dirtyRegions, 0);
    r.backup.isOnline = false;
    await r.fork.write(5 * region + 100, new Uint8Array(10).fill(2));
    const info = await r.tracker.getVolume("vol0");
    assert.equal(info.dirtyRegions, 1, "the region is dirty again at the tracker");
  } finally {
    await r.close();
  }
});

Deno.test("resync refuses to run on and stops when the backup goes offline, keeping the marks", async () => {
  const r = await rig();
  try {
    for (let i = 0; i < 8; i++) await r.fork.write(i * region, new Uint8Array(1).fill(i));
    r.backup.isOnline = false;
    const failed = await r.resync.start();
    assert.equal(failed.state, "failed");
    assert.match(failed.error ?? "", /offline/);
    assert.equal((await r.tracker.getVolume("vol0")).dirtyRegions, 8, "no mark was cleared");
  } finally {
    await r.close();
  }
});
