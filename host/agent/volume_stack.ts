/**
 * One volume's layer stack, assembled in one place: the primary image (FileVolume) under the fork
 * layer (ForkDevice with its RangeLock, BackupBatcher, TrackerMarker and ActivityRecord), and the
 * Resync that copies its marked regions to the backup (and the checksum resync that compares
 * every region with the backup's).
 */
import type { BlockDevice } from "../../src/block_device.ts";
import type { Clock } from "../../src/clock.ts";
import type { FaultFile } from "../../src/fault_file.ts";
import {
  ActivityRecord,
  activityRegionsMaxDefault,
  type ActivityTracker,
  activityUnitBytesDefault,
  predictRegionsDefault,
} from "../fork/activity_record.ts";
import { BackupBatcher, type BatcherOptions, type BatchWriter } from "../fork/backup_batcher.ts";
import { FileVolume } from "../fork/file_volume.ts";
import { ForkDevice, type ForkPaths } from "../fork/fork_device.ts";
import { RangeLock } from "../fork/range_lock.ts";
import { TrackerMarker } from "../fork/tracker_marker.ts";
import { Resync, type ResyncOptions, type ResyncTracker } from "../resync/resync.ts";
import {
  ChecksumResync,
  type ChecksumResyncOptions,
  type SecondaryChecksums,
} from "../resync/checksum_resync.ts";
import type { ResyncMode, ResyncProgress } from "../../src/host_schemas.ts";
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
  /** Compares every region's checksum with the backup's and ships those that differ. */
  checksumResync: ChecksumResync;
  /** Which of the two resyncs was started last (its progress is the volume's resync progress). */
  resyncMode: ResyncMode;
  /** True once the previous incarnation's activity marks were promoted to dirty marks. */
  promoted: boolean;
}

export interface VolumeStackOptions {
  volume: HostVolumeConfig;
  hostId: string;
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
  /** Test-only disk faults of the primary (`primary=enospc|eio`); absent: none checked. */
  faults?: FaultFile;
  /** The backup's region checksums (checksum resync); absent: checksum resync fails, saying so. */
  secondary?: SecondaryChecksums;
  /** Checksum resync bounds; its rate bound defaults to `resync.bytesPerSecMax`. */
  checksumResync?: ChecksumResyncOptions;
}

/** The resync of `v` started last: the one whose progress the volume shows. */
export function latestResync(v: HostVolume): { readonly progress: ResyncProgress } {
  return v.resyncMode === "checksum" ? v.checksumResync : v.resync;
}

/** Opens (creating when absent) the primary image and builds its layers. */
export async function openVolumeStack(opts: VolumeStackOptions): Promise<HostVolume> {
  const cfg = opts.volume;
  const primary = await FileVolume.open(cfg.path, cfg.sizeBytes, opts.faults);
  const locks = new RangeLock();
  const batcher = new BackupBatcher(opts.writer, cfg.name, opts.batcher);
  const now = () => opts.clock.now();
  const predictRegions = opts.predictRegions ?? predictRegionsDefault;
  const marker = new TrackerMarker(
    opts.tracker,
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
    : new ActivityRecord(opts.tracker, opts.hostId, cfg.name, unitBytes, cfg.sizeBytes, now, {
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
  });
  const resync = new Resync({
    volume: cfg.name,
    regionBytes: opts.regionBytes,
    primary,
    locks,
    backup: opts.backup,
    writer: opts.writer,
    tracker: opts.tracker,
    marker,
    clock: opts.clock,
  }, opts.resync);
  const checksumResync = new ChecksumResync({
    volume: cfg.name,
    sizeBytes: cfg.sizeBytes,
    regionBytes: opts.regionBytes,
    primary,
    locks,
    backup: opts.backup,
    writer: opts.writer,
    secondary: opts.secondary,
    tracker: opts.tracker,
    marker,
    clock: opts.clock,
  }, { bytesPerSecMax: opts.resync?.bytesPerSecMax, ...opts.checksumResync });
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
    checksumResync,
    resyncMode: "plain",
    promoted: false,
  };
}
