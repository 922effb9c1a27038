/**
 * The host agent: owns primary volumes, builds each one's write path (primary file → fork layer),
 * keeps the component status table, registers its volumes with the tracker (renewing the lease)
 * and the backup, and runs resync of its own volumes.
 */
import type { BlockDevice } from "../src/block_device.ts";
import type { Clock } from "../src/clock.ts";
import { ServiceError } from "../src/errors.ts";
import type {
  ClearRequest,
  ClearResponse,
  LogPage,
  TrackRequest,
  VolumeInfo,
  VolumeRegistration,
} from "../src/schemas.ts";
import { BackupBatcher, type BatcherOptions, type BatchWriter } from "./fork/backup_batcher.ts";
import { ComponentStatus, type ProbeOptions } from "./component_status.ts";
import { FileVolume } from "./fork/file_volume.ts";
import { ForkDevice } from "./fork/fork_device.ts";
import { RangeLock } from "./fork/range_lock.ts";
import { Resync, type ResyncOptions, type ResyncProgress } from "./resync/resync.ts";
import { TrackerMarker } from "./fork/tracker_marker.ts";
import {
  ActivityRecord,
  activityRegionsMaxDefault,
  type ActivityTracker,
  activityUnitBytesDefault,
  predictRegionsDefault,
} from "./fork/activity_record.ts";

/** What the agent needs of the tracker (tracker/client.ts provides it). */
export interface HostTracker extends ActivityTracker {
  registerVolume(name: string, reg: VolumeRegistration): Promise<VolumeInfo>;
  track(req: TrackRequest): Promise<unknown>;
  promoteActivity(name: string, host: string): Promise<{ regionsPromoted: number }>;
  getVolume(name: string): Promise<VolumeInfo>;
  log(name: string, query?: { limit?: number }): AsyncGenerator<LogPage>;
  clear(name: string, req: ClearRequest): Promise<ClearResponse>;
}

/** What the agent needs of the backup (backup/client.ts provides it). */
export interface HostBackup {
  registerVolume(name: string, sizeBytes: number, epoch?: number): Promise<void>;
  writeBatch(volume: string, body: Uint8Array, epoch?: number): Promise<unknown>;
  healthz(): Promise<boolean>;
}

export interface HostVolumeConfig {
  name: string;
  path: string;
  sizeBytes: number;
}

export interface HostAgentOptions {
  hostId: string;
  /** URL where reconstruct reaches this agent's HTTP API. */
  advertiseUrl: string;
  volumes: HostVolumeConfig[];
  regionBytes: number;
  tracker: HostTracker;
  backup: HostBackup;
  clock: Clock;
  /** false serves the primary directly (no fork): a baseline for benchmarks only. */
  forking?: boolean;
  /** Resync dirty volumes whenever the backup comes back online. */
  autoResync?: boolean;
  leaseMs?: number;
  /** Take volume leases held by another host. */
  takeover?: boolean;
  /** Regions marked ahead of a cold write (look-ahead), for dirty and activity marks. */
  predictRegions?: number;
  /** Bound of each volume's hot set of activity marks, in regions; 0 keeps none (unsafe). */
  activityRegionsMax?: number;
  /** Granularity of activity marks: a power-of-two multiple of the region (default 4 MiB). */
  activityUnitBytes?: number;
  probe?: ProbeOptions;
  batcher?: BatcherOptions;
  resync?: ResyncOptions;
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
}

export class HostAgent {
  readonly backupStatus: ComponentStatus;
  readonly #volumes = new Map<string, HostVolume>();
  #leaseTimer: ReturnType<typeof setInterval> | undefined;
  #registered = new Set<string>();
  #trackerError: string | null = null;
  /**
   * Raised whenever the backup goes offline; sent with every batch and with the volume
   * registration that brings the backup back, so the backup refuses batches the agent gave up on
   * (backup/epoch_fence.ts). Starts at the clock so it also rises across agent restarts.
   */
  #epoch: number;
  /** The backup as the write path and resync see it: every batch carries the current epoch. */
  readonly #writer: BatchWriter;

  private constructor(readonly opts: HostAgentOptions) {
    this.#epoch = opts.clock.now();
    this.#writer = {
      writeBatch: (volume, body) => opts.backup.writeBatch(volume, body, this.#epoch),
    };
    this.backupStatus = new ComponentStatus(
      "backup",
      () => this.#probeBackup(),
      opts.clock,
      opts.probe,
    );
    this.backupStatus.onChange((state) => {
      if (state === "offline") this.#epoch++;
    });
    if (opts.autoResync) {
      this.backupStatus.onChange((state) => {
        if (state === "online") void this.#autoResync();
      });
    }
  }

  /** Opens (creating when absent) every volume, registers them, and starts probing the backup. */
  static async open(opts: HostAgentOptions): Promise<HostAgent> {
    const agent = new HostAgent(opts);
    try {
      for (const v of opts.volumes) await agent.#openVolume(v);
    } catch (err) {
      await agent.close();
      throw err;
    }
    await agent.#registerWithTracker(true);
    const leaseMs = opts.leaseMs ?? 30_000;
    agent.#leaseTimer = setInterval(() => void agent.#registerWithTracker(false), leaseMs / 3);
    agent.backupStatus.start();
    return agent;
  }

  volume(name: string): HostVolume | undefined {
    return this.#volumes.get(name);
  }

  get volumes(): HostVolume[] {
    return [...this.#volumes.values()];
  }

  /** Starts a resync of `name`; 503 while the backup is offline, 404 for an unknown volume. */
  startResync(name: string): ResyncProgress {
    const v = this.#require(name);
    if (!this.backupStatus.isOnline) {
      const s = this.backupStatus.view();
      throw new ServiceError(
        503,
        `Cannot resync volume "${name}": backup is ${s.state}` +
          (s.lastError ? ` (last error: ${s.lastError})` : ""),
      );
    }
    void v.resync.start();
    return v.resync.progress;
  }

  resyncProgress(name: string): ResyncProgress {
    return this.#require(name).resync.progress;
  }

  /** The agent's status: components, mode and volumes. */
  status() {
    const backup = this.backupStatus.view();
    return {
      host: this.opts.hostId,
      url: this.opts.advertiseUrl,
      mode: this.opts.forking === false
        ? "pass-through"
        : backup.state === "online"
        ? "mirroring"
        : "tracking",
      components: {
        backup,
        tracker: { lastError: this.#trackerError },
      },
      volumes: this.volumes.map((v) => ({
        name: v.name,
        path: v.path,
        sizeBytes: v.sizeBytes,
        registered: this.#registered.has(v.name),
        writes: v.fork?.counters ?? null,
        backupBatches: v.batcher.batchesSent,
        trackerCommands: v.marker.commandsSent,
        trackerCacheHits: v.marker.cacheHits,
        cachedMarkedRegions: v.marker.cache.size,
        activity: v.activity
          ? {
            unitBytes: v.activity.unitBytes,
            hotUnits: v.activity.hot.size,
            unitsMax: v.activity.unitsMax,
            commandsSent: v.activity.commandsSent,
            retiresSent: v.activity.retiresSent,
            regionsRetired: v.activity.regionsRetired,
            taintedRegions: v.activity.tainted.size,
          }
          : null,
        promoted: v.promoted,
        resync: v.resync.progress,
      })),
    };
  }

  async close(): Promise<void> {
    clearInterval(this.#leaseTimer);
    this.backupStatus.stop();
    for (const v of this.#volumes.values()) await v.primary.close();
    this.#volumes.clear();
  }

  #require(name: string): HostVolume {
    const v = this.#volumes.get(name);
    if (!v) {
      throw new ServiceError(404, `Volume "${name}" is not served by host "${this.opts.hostId}"`);
    }
    return v;
  }

  async #openVolume(cfg: HostVolumeConfig): Promise<void> {
    const { opts } = this;
    if (this.#volumes.has(cfg.name)) throw new RangeError(`Volume "${cfg.name}" is given twice`);
    const primary = await FileVolume.open(cfg.path, cfg.sizeBytes);
    const locks = new RangeLock();
    const batcher = new BackupBatcher(this.#writer, cfg.name, opts.batcher);
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
      backup: this.backupStatus,
      batcher,
      marker,
      activity,
    });
    const resync = new Resync({
      volume: cfg.name,
      regionBytes: opts.regionBytes,
      primary,
      locks,
      backup: this.backupStatus,
      writer: this.#writer,
      tracker: opts.tracker,
      marker,
      clock: opts.clock,
    }, opts.resync);
    this.#volumes.set(cfg.name, {
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
    });
  }

  /** Registers (or renews the lease of) every volume; at start-up a refusal is fatal. */
  async #registerWithTracker(startup: boolean): Promise<void> {
    for (const v of this.#volumes.values()) {
      try {
        await this.opts.tracker.registerVolume(v.name, {
          sizeBytes: v.sizeBytes,
          regionBytes: this.opts.regionBytes,
          ownerHost: this.opts.hostId,
          ownerUrl: this.opts.advertiseUrl,
          leaseMs: this.opts.leaseMs ?? 30_000,
          takeover: startup && (this.opts.takeover ?? false),
        });
        this.#registered.add(v.name);
        if (!v.promoted) await this.#promote(v);
        this.#trackerError = null;
      } catch (err) {
        const status = (err as { status?: number }).status ?? 0;
        this.#trackerError = (err as Error).message;
        // 4xx: the tracker refuses this volume (size differs, lease held elsewhere): do not serve it.
        if (startup && status >= 400 && status < 500) {
          throw new RangeError(`Tracker refused volume "${v.name}": ${(err as Error).message}`);
        }
        if (startup) {
          console.warn(`host: tracker unreachable, will retry: ${(err as Error).message}`);
        }
      }
    }
  }

  /**
   * Turns the activity marks a previous incarnation of this host left (it may have died between a
   * backup acknowledgement and a primary write) into dirty marks, before this one retires any.
   */
  async #promote(v: HostVolume): Promise<void> {
    const { regionsPromoted } = await this.opts.tracker.promoteActivity(v.name, this.opts.hostId);
    v.promoted = true;
    if (v.activity) v.activity.retireEnabled = true;
    if (regionsPromoted > 0) {
      console.log(
        `host: volume "${v.name}": ${regionsPromoted} regions of activity from an earlier run ` +
          `are now dirty and will be resynced`,
      );
    }
  }

  /** The backup is usable again when it answers and knows every volume. */
  async #probeBackup(): Promise<void> {
    if (!(await this.opts.backup.healthz())) throw new Error("Backup /healthz did not answer ok");
    for (const v of this.#volumes.values()) {
      await this.opts.backup.registerVolume(v.name, v.sizeBytes, this.#epoch);
    }
  }

  async #autoResync(): Promise<void> {
    for (const v of this.#volumes.values()) {
      try {
        const info = await this.opts.tracker.getVolume(v.name);
        if (info.dirtyRegions > 0 && this.backupStatus.isOnline) void v.resync.start();
      } catch (err) {
        console.warn(
          `host: automatic resync of "${v.name}" not started: ${(err as Error).message}`,
        );
      }
    }
  }
}
