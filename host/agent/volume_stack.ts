/**
 * One volume's layer stack, assembled in one place: the primary image (FileVolume) under the fork
 * layer (ForkDevice with its RangeLock, BackupBatcher, TrackerMarker and ActivityRecord), and the
 * Resync that copies its marked regions to the backup.
 */
import type { BlockDevice } from "../../src/block_device.ts";
import type { Clock } from "../../src/clock.ts";
import {
  ActivityRecord,
  activityRegionsMaxDefault,
  type ActivityTracker,
  activityUnitBytesDefault,
  predictRegionsDefault,
} from "../fork/activity_record.ts";
import { BackupBatcher, type BatcherOptions, type BatchWriter } from "../fork/backup_batcher.ts";
import { FileVolume } from "../fork/file_volume.ts";
import { leasedTracker, LeaseGuard } from "../fork/lease_guard.ts";
import { ForkDevice, type ForkPaths } from "../fork/fork_device.ts";
import { RangeLock } from "../fork/range_lock.ts";
import { TrackerMarker } from "../fork/tracker_marker.ts";
import { Resync, type ResyncOptions, type ResyncTracker } from "../resync/resync.ts";
import type { HostTracker } from "./ports.ts";

export interface HostVolumeConfig {
  name: string;
  path: string;
  sizeBytes: number;
}

/** One primary volume and its write path. */
export interface HostVolume {
  name: string;
  path: string;
  sizeBytes: number;
  primary: FileVolume;
  /** What applications write to: the fork layer over the primary. */
  device: BlockDevice;
  fork: ForkDevice | undefined;
  locks: RangeLock;
  batcher: BackupBatcher;
  marker: TrackerMarker;
  activity: ActivityRecord | undefined;
  resync: Resync;
  /** True once the previous incarnation's activity marks were promoted to dirty marks. */
  promoted: boolean;
  /** This instance's lease on the volume, and whether it was fenced. */
  lease: LeaseGuard;
}

export interface VolumeStackOptions {
  volume: HostVolumeConfig;
  hostId: string;
  /** This agent process's random id (its lease identity at the tracker); random by default. */
  instance?: string;
  regionBytes: number;
  /** The tracker's ports the marker, the activity record and resync use. */
  tracker: Pick<HostTracker, "track"> & ActivityTracker & ResyncTracker;
  /** Whether the backup is online; write failures mark it offline; `settled` (seed 002). */
  backup: ForkPaths["backup"];
  /** Where resync copies go (encoded records, acknowledged once durable). */
  writer: BatchWriter;
  /** Where mirror writes go (the backup link); default: a BackupBatcher over `writer`. */
  submitter?: ForkPaths["batcher"];
  clock: Clock;
  /** false serves the primary directly (no fork): a baseline for benchmarks only. */
  forking?: boolean;
  /** Regions marked ahead of a cold write (look-ahead), for dirty and activity marks. */
  predictRegions?: number;
  /** Bound of the hot set of activity marks, in regions; 0 keeps none (unsafe). */
  activityRegionsMax?: number;
  /** Granularity of activity marks: a power-of-two multiple of the region (default 4 MiB). */
  activityUnitBytes?: number;
  batcher?: BatcherOptions;
  resync?: ResyncOptions;
}

/** Opens (creating when absent) the primary image and builds its layers. */
export async function openVolumeStack(opts: VolumeStackOptions): Promise<HostVolume> {
  const cfg = opts.volume;
  const primary = await FileVolume.open(cfg.path, cfg.sizeBytes);
  const locks = new RangeLock();
  const { lease, tracker } = await leaseOf(opts, primary);
  const batcher = new BackupBatcher(opts.writer, cfg.name, opts.batcher);
  const now = () => opts.clock.now();
  const predictRegions = opts.predictRegions ?? predictRegionsDefault;
  const marker = new TrackerMarker(
    tracker,
    opts.hostId,
    cfg.name,
    opts.regionBytes,
    cfg.sizeBytes,
    now,
    predictRegions,
  );
  const activityRegionsMax = opts.activityRegionsMax ?? activityRegionsMaxDefault;
  const unitBytes = Math.max(
    opts.regionBytes,
    opts.activityUnitBytes ?? activityUnitBytesDefault,
  );
  const regionsPerUnit = unitBytes / opts.regionBytes;
  const activity = activityRegionsMax === 0
    ? undefined
    : new ActivityRecord(tracker, opts.hostId, cfg.name, unitBytes, cfg.sizeBytes, now, {
      unitsMax: Math.max(1, Math.floor(activityRegionsMax / regionsPerUnit)),
      predictUnits: Math.ceil(predictRegions / regionsPerUnit),
    });
  const fork = opts.forking === false ? undefined : new ForkDevice(primary, {
    volume: cfg.name,
    locks,
    backup: opts.backup,
    batcher: opts.submitter ?? batcher,
    marker,
    activity,
    lease,
  });
  const resync = new Resync({
    volume: cfg.name,
    regionBytes: opts.regionBytes,
    primary,
    locks,
    backup: opts.backup,
    writer: opts.writer,
    tracker,
    marker,
    clock: opts.clock,
  }, opts.resync);
  return {
    ...cfg,
    primary,
    device: fork ?? primary,
    fork,
    locks,
    batcher,
    marker,
    activity,
    resync,
    promoted: false,
    lease,
  };
}

/**
 * The volume's lease guard and the tracker as its layers use it (with the lease claim). Locks the
 * primary first (closing it when another process holds it): the lease's `ownerPrimary` is only
 * this agent's while it holds the file.
 */
async function leaseOf(
  opts: VolumeStackOptions,
  primary: FileVolume,
): Promise<{ lease: LeaseGuard; tracker: VolumeStackOptions["tracker"] }> {
  try {
    await primary.lockExclusive();
  } catch (err) {
    await primary.close();
    throw err;
  }
  const lease = new LeaseGuard(
    opts.volume.name,
    opts.instance ?? crypto.randomUUID(),
    await primaryId(opts.volume.path),
    () => opts.clock.now(),
  );
  return { lease, tracker: leasedTracker(opts.tracker, lease) };
}

/**
 * What this agent serves, as the tracker compares it: "HOSTNAME:/real/path". The host name needs
 * --allow-sys=hostname; without it, the kernel's name from /proc, else "localhost".
 */
async function primaryId(path: string): Promise<string> {
  let hostname = "localhost";
  try {
    if (Deno.permissions.querySync({ name: "sys", kind: "hostname" }).state === "granted") {
      hostname = Deno.hostname();
    } else {
      hostname = (await Deno.readTextFile("/proc/sys/kernel/hostname")).trim() || hostname;
    }
  } catch { /* keep "localhost" */ }
  return `${hostname}:${await Deno.realPath(path)}`;
}
