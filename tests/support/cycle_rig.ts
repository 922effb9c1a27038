/**
 * A cycle-mode volume stack for in-process tests: a real tracker served on a loopback port, the
 * volume's layers in cycle mode, and a backup writer that stages cycles like the backup does
 * (staging_backup.ts). The walker ships one region a chunk, one chunk at a time, so its order is
 * the regions' order.
 */
import { openVolumeStack } from "../../host/agent/volume_stack.ts";
import type { CycleMirrorOptions } from "../../host/cycle/cycle_mirror.ts";
import { type Clock, systemClock } from "../../src/clock.ts";
import { createTrackerApp } from "../../tracker/service.ts";
import { TrackerClient } from "../../tracker/client.ts";
import { StagingBackup } from "./staging_backup.ts";

export const region = 64 * 1024;
export const sizeBytes = 16 * region;

export async function cycleRig(
  opts: { clock?: Clock; cycles?: CycleMirrorOptions } = {},
) {
  const kv = await Deno.openKv(":memory:");
  const service = createTrackerApp({ kv, clock: systemClock });
  const clock = opts.clock ?? systemClock;
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
  const backup = { isOnline: true, markOffline() {} };
  const staging = new StagingBackup(sizeBytes);
  const v = await openVolumeStack({
    volume: { name: "vol0", path: `${dir}/vol0.img`, sizeBytes, mirror: "cycles" },
    hostId: "host0",
    regionBytes: region,
    tracker,
    backup,
    writer: staging.writer,
    submitter: {
      submit: () => Promise.reject(new Error("cycle mode sent a write to the backup")),
    },
    clock,
    predictRegions: 0,
    resync: { chunkBytes: region, concurrency: 1 },
    cycles: opts.cycles,
  });
  v.promoted = true;
  const cycles = v.cycles!;
  return {
    tracker,
    backup,
    staging,
    v,
    cycles,
    dirty: async () => (await tracker.getVolume("vol0")).dirtyRegions,
    async primaryBytes() {
      return await v.primary.read(0, sizeBytes);
    },
    async close() {
      cycles.stop();
      await v.primary.close();
      await server.shutdown();
      await service.close();
      kv.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}
