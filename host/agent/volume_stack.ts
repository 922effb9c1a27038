/**
 * One volume's layer stack, assembled in one place: the primary image (FileVolume) under the fork
 * layer (ForkDevice with its RangeLock, BackupBatcher, TrackerMarker and ActivityRecord), the
 * Resync that copies its marked regions to the backup (and the checksum resync that compares
 * every region with the backup's), its online verify, and its trust (generation sidecar, issue 9).
 */
import { dirname } from "node:path";
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
import { leasedTracker, LeaseGuard } from "../fork/lease_guard.ts";
import { ForkDevice, type ForkPaths } from "../fork/fork_device.ts";
import { RangeLock } from "../fork/range_lock.ts";
import { TrackerMarker } from "../fork/tracker_marker.ts";
import { Resync, type ResyncOptions, type ResyncTracker } from "../resync/resync.ts";
import {
  ChecksumResync,
  type ChecksumResyncOptions,
  type SecondaryChecksums,
} from "../resync/checksum_resync.ts";
import { OnlineVerify } from "../resync/online_verify.ts";
import { CycleMirror, type CycleMirrorOptions } from "../cycle/cycle_mirror.ts";
import type { MirrorMode, ResyncMode, ResyncProgress } from "../../src/host_schemas.ts";
import { ServiceCallError } from "../../src/http_client.ts";
import type { TrackRequest } from "../../src/schemas.ts";
import type { HostTracker } from "./ports.ts";
import { type TrackerGenerationAnswer, VolumeTrust } from "./volume_trust.ts";

export interface HostVolumeConfig {
  name: string;
  path: string;
  sizeBytes: number;
  /** How the volume is mirrored (issue 10): journal (default) or cycles. */
  mirror?: MirrorMode;
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
  /** Online verify: compares every region with the backup's, marks those that differ. */
  verify: OnlineVerify;
  /** How the volume is mirrored: every write through the journal, or in cycles (issue 10). */
  mirror: MirrorMode;
  /** Cycle mode: the volume's freeze-and-copy cycles and their schedule; absent in journal mode. */
  cycles: CycleMirror | undefined;
  /** Which of the two resyncs was started last (its progress is the volume's resync progress). */
  resyncMode: ResyncMode;
  /** True once the previous incarnation's activity marks were promoted to dirty marks. */
  promoted: boolean;
  /**
   * True while a cycle this agent opened at the backup's return (cycle_on_return.ts) has not been
   * committed by a resync: the backup stages the volume's writes meanwhile, so even a clean
   * volume needs one resync (reconstruct and --auto-resync run it) to bring its secondary on.
   */
  stageOpen: boolean;
  /** Generations and trust (issue 9): whether its mirror may be trusted, mirrored, resynced. */
  trust: VolumeTrust;
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
  /** Test-only disk faults of the primary (`primary=enospc|eio`); absent: none checked. */
  faults?: FaultFile;
  /** The backup's region checksums (checksum resync); absent: checksum resync fails, saying so. */
  secondary?: SecondaryChecksums;
  /** Checksum resync bounds; its rate bound defaults to `resync.bytesPerSecMax`. */
  checksumResync?: ChecksumResyncOptions;
  /** Cycle mode: the interval between cycle starts (default 30 s). */
  cycleIntervalMs?: number;
  /** Cycle mode: further bounds (tests); the walker's default to the resync's. */
  cycles?: CycleMirrorOptions;
  /**
   * Registers the volumes again at once; called when the tracker answers a mark with 404 (it lost
   * the record), before the mark is retried once.
   */
  reRegister?: () => Promise<void>;
}

/**
 * The resync of `v` started last: the one whose progress the volume shows. In cycle mode a plain
 * resync is a cycle (`HostAgent.startResync`), so it shows the latest cycle.
 */
export function latestResync(v: HostVolume): { readonly progress: ResyncProgress } {
  if (v.resyncMode === "checksum") return v.checksumResync;
  return v.cycles ?? v.resync;
}

/**
 * `tracker` retrying once after a re-registration when it answers 404: the tracker lost the
 * volume's record (restarted empty, restored from an older copy), so the lease registers it again
 * at once instead of failing writes until the next renewal (issue 9). Marks and activity marks
 * both go through it; a second 404 is the caller's error.
 */
function reRegistering<T extends Pick<HostTracker, "track" | "activity">>(
  tracker: T,
  reRegister: (() => Promise<void>) | undefined,
): T {
  if (!reRegister) return tracker;
  const retried = <R>(call: () => Promise<R>) => async (): Promise<R> => {
    try {
      return await call();
    } catch (err) {
      if (!(err instanceof ServiceCallError && err.status === 404)) throw err;
      await reRegister();
      return await call();
    }
  };
  const wrapped: Record<string, unknown> = {
    track: (req: TrackRequest) => retried(() => tracker.track(req))(),
    activity: (req: TrackRequest) => retried(() => tracker.activity(req))(),
  };
  return new Proxy(tracker, {
    get(target, prop) {
      if (typeof prop === "string" && prop in wrapped) return wrapped[prop];
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/** The marker's port to the tracker: every answer's generation and mark sequence is checked. */
function checkedSender(tracker: Pick<HostTracker, "track">, trust: VolumeTrust) {
  return {
    track: async (req: TrackRequest) => {
      const seen = trust.snapshot();
      const answer = await tracker.track(req);
      await trust.checkTracker(answer as TrackerGenerationAnswer, seen, false);
      return answer;
    },
  };
}

/**
 * Opens (creating when absent, with its missing parent directories) the primary image and builds
 * its layers. `cfg.path` comes from a `--volume` spec already validated with every other flag, so
 * a bad command line creates no directory.
 */
export async function openVolumeStack(opts: VolumeStackOptions): Promise<HostVolume> {
  const cfg = opts.volume;
  await Deno.mkdir(dirname(cfg.path), { recursive: true });
  const primary = await FileVolume.open(cfg.path, cfg.sizeBytes, opts.faults);
  // The lock first: a second agent on this primary stops before it reads or writes the sidecar.
  const { lease, tracker } = await leaseOf(opts, primary);
  let trust: VolumeTrust;
  try {
    trust = await VolumeTrust.open(cfg.name, cfg.path, () => opts.clock.now());
  } catch (err) {
    await primary.close();
    throw err;
  }
  // In split brain this volume is not mirrored: the fork layer sees the backup as offline and
  // marks at the tracker instead (issue 9).
  const backup: ForkPaths["backup"] = {
    get isOnline() {
      return opts.backup.isOnline && trust.mirrorAllowed;
    },
    markOffline: (err) => opts.backup.markOffline(err),
    settled: () => opts.backup.settled?.() ?? Promise.resolve(),
  };
  const locks = new RangeLock();
  const batcher = new BackupBatcher(opts.writer, cfg.name, opts.batcher);
  const now = () => opts.clock.now();
  const mirror = cfg.mirror ?? "journal";
  // In cycle mode the marks are what the next cycle ships: a region marked ahead of its write
  // would be shipped unwritten (the hot-spot bench: 1.51 GiB shipped with marks ahead, 1.15 GiB
  // without). Marks ahead only save tracker round trips, so cycle-mode volumes make none.
  const predictRegions = mirror === "cycles" ? 0 : opts.predictRegions ?? predictRegionsDefault;
  // The marker's port (lease claim, generation checks); online verify marks through it too.
  const sender = checkedSender(tracker, trust);
  const marker = new TrackerMarker(
    sender,
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
  // Cycle mode sends nothing to the backup ahead of the primary: no activity marks are needed.
  const activity = activityRegionsMax === 0 || mirror === "cycles"
    ? undefined
    : new ActivityRecord(tracker, opts.hostId, cfg.name, unitBytes, cfg.sizeBytes, now, {
      unitsMax: Math.max(1, Math.floor(activityRegionsMax / regionsPerUnit)),
      predictUnits: Math.ceil(predictRegions / regionsPerUnit),
    });
  trust.caches.push(marker);
  if (activity) trust.caches.push(activity);
  // Late-bound: the cycle schedule asks the volume's state (promoted, resyncs) at every tick.
  const self: { volume?: HostVolume } = {};
  const cycles = mirror === "journal" ? undefined : new CycleMirror({
    volume: cfg.name,
    sizeBytes: cfg.sizeBytes,
    regionBytes: opts.regionBytes,
    primary,
    locks,
    backup,
    writer: opts.writer,
    tracker,
    marker,
    clock: opts.clock,
    refusal: () => self.volume ? cycleRefusal(self.volume, opts.backup.isOnline) : null,
  }, {
    intervalMs: opts.cycleIntervalMs,
    bytesPerSecMax: opts.resync?.bytesPerSecMax,
    chunkBytes: opts.resync?.chunkBytes,
    concurrency: opts.resync?.concurrency,
    pageExtentsMax: opts.resync?.logPageExtentsMax,
    ...opts.cycles,
  });
  const fork = opts.forking === false ? undefined : new ForkDevice(primary, {
    volume: cfg.name,
    locks,
    backup,
    batcher: opts.submitter ?? batcher,
    marker,
    activity,
    cycles: cycles &&
      { regionBytes: opts.regionBytes, beforeWrite: (o, l) => cycles.beforeWrite(o, l) },
    lease,
  });
  const resync = new Resync({
    volume: cfg.name,
    regionBytes: opts.regionBytes,
    primary,
    locks,
    backup,
    writer: opts.writer,
    tracker,
    marker,
    clock: opts.clock,
  }, opts.resync);
  const checksumResync = new ChecksumResync({
    volume: cfg.name,
    sizeBytes: cfg.sizeBytes,
    regionBytes: opts.regionBytes,
    primary,
    locks,
    backup,
    writer: opts.writer,
    secondary: opts.secondary,
    tracker,
    marker,
    clock: opts.clock,
  }, {
    bytesPerSecMax: opts.resync?.bytesPerSecMax,
    staged: opts.resync?.staged,
    ...opts.checksumResync,
  });
  // The same bounds as checksum resync: it reads and hashes the same way.
  const verify = new OnlineVerify({
    volume: cfg.name,
    sizeBytes: cfg.sizeBytes,
    regionBytes: opts.regionBytes,
    hostId: opts.hostId,
    primary,
    locks,
    backup,
    secondary: opts.secondary,
    tracker: sender,
    clock: opts.clock,
  }, { bytesPerSecMax: opts.resync?.bytesPerSecMax, ...opts.checksumResync });
  const volume: HostVolume = self.volume = {
    ...cfg,
    mirror,
    cycles,
    primary,
    device: fork ?? primary,
    fork,
    locks,
    batcher,
    marker,
    activity,
    resync,
    checksumResync,
    verify,
    resyncMode: "plain",
    promoted: false,
    stageOpen: false,
    trust,
    lease,
  };
  return volume;
}

/** Why `v` may not run a cycle now (status, message), or null when it may. */
function cycleRefusal(
  v: HostVolume,
  backupOnline: boolean,
): { status: 409 | 503; message: string } | null {
  const cannot = `Cannot run a cycle of volume "${v.name}"`;
  if (v.lease.fenced) return { status: 409, message: `${cannot}: ${v.lease.fenced.reason}` };
  const refusal = v.trust.plainResyncRefusal();
  if (refusal) return { status: 409, message: `${cannot}: ${refusal}` };
  if (!backupOnline) return { status: 503, message: `${cannot}: the backup is not online` };
  if (!v.promoted) {
    return {
      status: 409,
      message: `${cannot} yet: the activity marks this host's previous run left are not yet ` +
        `promoted to dirty marks`,
    };
  }
  if (v.checksumResync.running) {
    return { status: 409, message: `${cannot}: a checksum resync of it is running` };
  }
  return null;
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
  return { lease, tracker: reRegistering(leasedTracker(opts.tracker, lease), opts.reRegister) };
}

/**
 * What this agent serves, as the tracker compares it: "HOSTNAME:/real/path". The host name needs
 * --allow-sys=hostname (`deno task host` and `start` grant it); without it, the kernel's name
 * from /proc/sys/kernel/hostname (Deno refuses that read too without --allow-all), else
 * "localhost".
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
