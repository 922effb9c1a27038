/**
 * Resync of a volume whose host agent will not come back (`reconstruct --host ID`): take over its
 * lease at the tracker, promote the dead host's activity marks to dirty marks (it may have died
 * between a backup acknowledgement and a primary write), and copy every marked region from the
 * primary image, reachable from here, to the backup (with `mode: "checksum"`, every region is
 * compared with the backup's instead, and those that differ are copied).
 */
import { systemClock } from "../../src/clock.ts";
import type { VolumeInfo } from "../../src/schemas.ts";
import type { BackupClient } from "../../backup/client.ts";
import type { TrackerClient } from "../../tracker/client.ts";
import { FileVolume } from "../fork/file_volume.ts";
import { readSidecar } from "../fork/generation_sidecar.ts";
import { RangeLock } from "../fork/range_lock.ts";
import { Resync, type ResyncProgress } from "./resync.ts";
import { ChecksumResync } from "./checksum_resync.ts";
import type { ResyncMode } from "../../src/host_schemas.ts";

export interface OrphanOptions {
  tracker: TrackerClient;
  backup: BackupClient;
  /** The identity that takes the lease over (a host id). */
  asHost: string;
  /** Where the primary image of the volume is, seen from this machine. */
  primaryPath: string;
  /** Take the lease even while the old owner's lease runs (it may be alive!). */
  force: boolean;
  /** `checksum`: compare every region with the backup's, ship those that differ. */
  mode?: ResyncMode;
  show: (p: ResyncProgress) => void;
}

/** Takes over `info`'s volume and resyncs it; throws with a clear message on refusal. */
export async function resyncOrphan(info: VolumeInfo, opts: OrphanOptions): Promise<ResyncProgress> {
  const now = systemClock.now();
  if (info.leaseExpiresAt > now && !opts.force) {
    throw new Error(
      `host "${info.ownerHost}" still holds the lease on "${info.name}" for ` +
        `${Math.ceil((info.leaseExpiresAt - now) / 1000)} s more; it may be alive. ` +
        `Stop it, wait, or pass --force`,
    );
  }
  // Issue 9: the dead host's primary may already be known to need more than a plain resync.
  const sidecar = await readSidecar(info.name, opts.primaryPath);
  if (sidecar && sidecar.trust !== "trusted") {
    throw new Error(
      `the primary's generation sidecar says volume "${info.name}" is ${sidecar.trust}` +
        ` (${sidecar.trustReason}); a plain resync from here is refused: start a host agent ` +
        `on ${opts.primaryPath} and run the command it names`,
    );
  }
  const primary = await FileVolume.open(opts.primaryPath, info.sizeBytes);
  try {
    // Claim the lease epoch the backup's fence holds, so the epoch the takeover raises is above
    // it even if the tracker's record lost part of its history (lost, restored from a copy).
    const fence = (await opts.backup.listVolumes()).find((v) => v.name === info.name);
    const taken = await opts.tracker.registerVolume(info.name, {
      sizeBytes: info.sizeBytes,
      regionBytes: info.regionBytes,
      ownerHost: opts.asHost,
      // reconstruct serves no API: a host agent taking the volume back re-registers with its own.
      ownerUrl: "http://127.0.0.1:1",
      takeover: true,
      ...(fence?.leaseEpoch === undefined ? {} : { leaseEpoch: fence.leaseEpoch }),
    });
    const { regionsPromoted } = await opts.tracker.promoteActivity(info.name, info.ownerHost);
    if (regionsPromoted > 0) {
      console.log(
        `reconstruct: "${info.name}": ${regionsPromoted} activity regions of host ` +
          `"${info.ownerHost}" are now dirty`,
      );
    }
    // An epoch above any the dead host used (its epochs started at its own start time).
    const epoch = systemClock.now();
    // The lease epoch the takeover raised: the dead host's batches are fenced from now on.
    const leaseEpoch = taken.leaseEpoch;
    await opts.backup.registerVolume(info.name, info.sizeBytes, epoch, undefined, leaseEpoch);
    let offline: unknown;
    const deps = {
      volume: info.name,
      regionBytes: info.regionBytes,
      primary,
      locks: new RangeLock(),
      backup: {
        get isOnline() {
          return offline === undefined;
        },
        markOffline: (err: unknown) => (offline = err),
      },
      writer: {
        writeBatch: (volume: string, body: Uint8Array) =>
          opts.backup.writeBatch(volume, body, epoch, leaseEpoch),
      },
      tracker: opts.tracker,
      marker: { forget: () => {} },
      clock: systemClock,
    };
    const resync = opts.mode === "checksum"
      ? new ChecksumResync({ ...deps, sizeBytes: info.sizeBytes, secondary: opts.backup })
      : new Resync(deps);
    const job = resync.start();
    while (resync.running) {
      opts.show(resync.progress);
      await new Promise((r) => setTimeout(r, 500));
    }
    const done = await job;
    opts.show(done);
    return done;
  } finally {
    await primary.close();
  }
}
