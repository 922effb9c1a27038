/**
 * The host agent: opens its primary volumes (each one's layer stack), holds the lease on them at
 * the tracker, keeps the link to the backup, and controls resync of its own volumes (on request,
 * and automatically when the backup comes back).
 */
import type { Clock } from "../../src/clock.ts";
import type { FaultFile } from "../../src/fault_file.ts";
import { ServiceError } from "../../src/errors.ts";
import type {
  CycleProgress,
  HostStatus,
  ResyncMode,
  ResyncProgress,
  VerifyProgress,
} from "../../src/host_schemas.ts";
import type { BatcherOptions } from "../fork/backup_batcher.ts";
import type { ResyncOptions } from "../resync/resync.ts";
import type { AckMode } from "../../src/link_protocol.ts";
import { BackupLink, type BackupLinkOptions } from "./backup_link.ts";
import type { ComponentStatus, ProbeOptions } from "./component_status.ts";
import type { HostBackup, HostTracker } from "./ports.ts";
import { statusView } from "./status_view.ts";
import { TrackerLease } from "./tracker_lease.ts";
import { AgentEvents } from "./agent_events.ts";
import { TrackerHealth, watchTracker } from "./tracker_health.ts";
import {
  type HostVolume,
  type HostVolumeConfig,
  latestResync,
  openVolumeStack,
} from "./volume_stack.ts";
import type { ChecksumResyncOptions } from "../resync/checksum_resync.ts";
import { openCyclesOnReturn } from "./cycle_on_return.ts";
import { type CycleMirror, CycleRefusedError } from "../cycle/cycle_mirror.ts";
import type { DirtyExtentSource } from "../nbd/block_status.ts";
import { volumeDirtyExtents } from "./dirty_extents.ts";
import { logLine } from "../../src/events.ts";

export type { HostBackup, HostTracker } from "./ports.ts";
export type { HostVolume, HostVolumeConfig } from "./volume_stack.ts";

export interface HostAgentOptions {
  hostId: string;
  /**
   * This agent process's identity in its leases; a fresh random one by default (never reuse one:
   * the tracker takes two agents with one instance for one).
   */
  instance?: string;
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
  /** When a mirror write counts as acknowledged: journal synced (default) or received. */
  ack?: AckMode;
  linkAckTimeoutMs?: number;
  /** The backup link's address; default: what the backup advertises at GET /v1/link. */
  linkAddress?: string;
  linkFactory?: BackupLinkOptions["linkFactory"];
  /** The shared token, sent in the backup link's HELLO (HTTP clients carry their own). */
  linkToken?: string;
  batcher?: BatcherOptions;
  resync?: ResyncOptions;
  /** Test-only disk faults of the primaries (main.ts: TRACKMIRROR_FAULT_FILE). */
  faults?: FaultFile;
  checksumResync?: ChecksumResyncOptions;
  /** Cycle-mode volumes (`mirror: "cycles"`): the interval between cycle starts (default 30 s). */
  cycleIntervalMs?: number;
}

/** How a resync is asked for (`POST /v1/volumes/{name}/resync` body). */
export interface ResyncRequest {
  /** "plain" (default): copy the tracker's marked regions; "checksum": compare every region. */
  mode?: "plain" | "checksum";
  /** With "checksum": resolve a split brain by keeping this primary (issue 9). */
  discardSecondary?: boolean;
}

export class HostAgent {
  readonly backupLink: BackupLink;
  readonly #volumes = new Map<string, HostVolume>();
  readonly #lease: TrackerLease;
  /** This process's lease identity (`opts.instance` or a random UUID). */
  readonly instance: string;
  readonly opts: HostAgentOptions;
  /** The tracker as every call of this agent found it (status: `components.tracker`). */
  readonly trackerHealth: TrackerHealth;
  readonly #startedAt: number;
  readonly #events: AgentEvents;

  private constructor(given: HostAgentOptions) {
    this.trackerHealth = new TrackerHealth(given.clock);
    const opts = this.opts = { ...given, tracker: watchTracker(given.tracker, this.trackerHealth) };
    this.#startedAt = given.clock.now();
    this.instance = opts.instance ?? crypto.randomUUID();
    this.backupLink = new BackupLink(opts.backup, {
      hostId: opts.hostId,
      ack: opts.ack,
      regionBytes: opts.regionBytes,
      tracker: opts.tracker,
      clock: opts.clock,
      probe: opts.probe,
      linkAckTimeoutMs: opts.linkAckTimeoutMs,
      linkAddress: opts.linkAddress,
      linkFactory: opts.linkFactory,
      token: opts.linkToken,
      beforeOnline: opts.resync?.staged === false ? undefined : async (names, send) => {
        const opened = await openCyclesOnReturn(opts.tracker, names, send);
        for (const name of opened) {
          const v = this.#volumes.get(name);
          if (v && !v.cycles) v.stageOpen = true; // a cycle-mode volume's next cycle commits it
        }
      },
      generations: {
        primaryGeneration: (name) => this.#volumes.get(name)?.trust.primaryGeneration,
        checkSecondary: async (name, answer) => {
          await this.#volumes.get(name)?.trust.checkSecondary(answer);
        },
      },
    });
    this.#lease = new TrackerLease({ ...opts, instance: this.instance }, this.#volumes);
    this.#events = new AgentEvents({
      backup: this.backupLink.status,
      backupUrl: opts.backup.baseUrl,
      forking: opts.forking !== false,
      volumes: () => this.volumes,
      now: () => opts.clock.now(),
    });
    if (opts.autoResync) {
      this.backupStatus.onChange((state) => {
        if (state === "online") void this.#autoResync();
      });
    }
  }

  /** The backup's status: whether writes are forked to it. */
  get backupStatus(): ComponentStatus {
    return this.backupLink.status;
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
    await agent.#claimBackupLeaseEpochs();
    await agent.#lease.start();
    agent.backupStatus.start();
    agent.#events.start();
    for (const v of agent.#volumes.values()) v.cycles?.startSchedule();
    return agent;
  }

  volume(name: string): HostVolume | undefined {
    return this.#volumes.get(name);
  }

  get volumes(): HostVolume[] {
    return [...this.#volumes.values()];
  }

  /**
   * The dirty record of `name` for the NBD server's `trackmirror:dirty` context; undefined for an
   * unknown volume and without forking (nothing is tracked: no record could be trusted).
   */
  dirtySource(name: string): DirtyExtentSource | undefined {
    const v = this.#volumes.get(name);
    if (!v || this.opts.forking === false) return undefined;
    return volumeDirtyExtents({
      volume: name,
      sizeBytes: v.sizeBytes,
      regionBytes: this.opts.regionBytes,
      tracker: this.opts.tracker,
      lockedRanges: () => v.locks.ranges(),
      unhardenedRegions: () => this.backupLink.unhardenedRegions(name),
      refusal: () =>
        v.trust.plainResyncRefusal() ??
          (v.promoted ? null : "the activity marks of this host's previous run are not yet " +
            "promoted to dirty marks; retry once its status shows the volume promoted"),
    });
  }

  /**
   * Starts a resync of `name` (`checksum`: compare every region, ship those that differ); 503
   * while the backup is offline, 404 for an unknown volume, 409 while the other mode runs and for
   * a plain resync of a volume that is not trusted (issue 9: it names the command to run).
   */
  startResync(name: string, mode: ResyncMode = "plain"): ResyncProgress {
    const v = this.#require(name);
    if (mode === "plain") {
      const refusal = v.trust.plainResyncRefusal();
      if (refusal) throw new ServiceError(409, refusal);
    }
    if (mode === "checksum" && v.cycles?.running) {
      throw new ServiceError(
        409,
        `Cannot start a checksum resync of volume "${name}": a cycle of it is running`,
      );
    }
    const other = mode === "checksum" ? v.resync : v.checksumResync;
    if (other.running) {
      throw new ServiceError(
        409,
        `Cannot start a ${mode} resync of volume "${name}": a ${
          mode === "checksum" ? "plain" : "checksum"
        } resync is running`,
      );
    }
    this.#requireBackupOnline(name);
    if (!v.promoted) {
      // The tracker's record lacks what the previous run's activity marks cover until they are
      // promoted: a resync now would copy too little and clear the volume as clean.
      throw new ServiceError(
        409,
        `Cannot resync volume "${name}" yet: the activity marks this host's previous run left are ` +
          `not yet promoted to dirty marks (the tracker has not taken this agent's registration ` +
          `since it started: ${this.#lease.trackerError ?? "no answer yet"}); retry once its ` +
          `status shows the volume promoted`,
      );
    }
    v.resyncMode = mode;
    if (mode === "plain" && v.cycles) {
      // Cycle mode: a resync is the next cycle, run now (it ships every marked region at once).
      try {
        void v.cycles.start({ fresh: true });
      } catch (err) {
        if (err instanceof CycleRefusedError) throw new ServiceError(err.status, err.message);
        throw err;
      }
      return v.cycles.progress;
    }
    if (mode === "plain") {
      void v.resync.start().then((done) => this.#committed(v, done));
      return v.resync.progress;
    }
    if (v.checksumResync.running) return v.checksumResync.progress;
    const lossCountAtStart = v.trust.lossCount;
    void v.checksumResync.start().then(async (done) => {
      this.#committed(v, done);
      if (done.state !== "done") return;
      // Every region now equals the backup's (or is marked again): the volume is in sync, unless
      // a loss was noticed meanwhile (markTrusted then keeps it untrusted).
      try {
        await v.trust.markTrusted(lossCountAtStart);
      } catch (err) {
        logLine(
          "host",
          "warn",
          `volume "${name}" stays untrusted: ${(err as Error).message}`,
        );
      }
    });
    return v.checksumResync.progress;
  }

  /**
   * A resync as the host route asks for it: plain or checksum; a checksum one with
   * `discardSecondary` first resolves a split brain by making the backup adopt this primary.
   */
  async requestResync(name: string, req: ResyncRequest = {}): Promise<ResyncProgress> {
    const v = this.#require(name);
    if (req.discardSecondary && req.mode !== "checksum") {
      throw new ServiceError(
        400,
        `discardSecondary for volume "${name}" needs mode "checksum" (--checksum)`,
      );
    }
    if (req.mode !== "checksum") return this.startResync(name);
    this.#requireBackupOnline(name);
    if (v.trust.trust === "split-brain") {
      if (!req.discardSecondary) {
        throw new ServiceError(409, v.trust.plainResyncRefusal()!);
      }
      const answer = await this.backupLink.adoptSecondary(name, v.trust.primaryGeneration);
      await v.trust.adoptedSecondary(answer);
    }
    return this.startResync(name, "checksum");
  }

  /**
   * A checksum resync of `name` made primary and secondary equal: its trust is restored
   * (persisted in the generation sidecar). `lossCountAtStart` = `volume(name).trust.lossCount`
   * taken when it started: a loss noticed meanwhile keeps the volume untrusted (resolves false).
   * Throws while in split brain.
   */
  async markTrusted(name: string, lossCountAtStart?: number): Promise<boolean> {
    return await this.#require(name).trust.markTrusted(lossCountAtStart);
  }

  /** 503 naming the backup's state (and last error) unless it is online. */
  #requireBackupOnline(name: string, what: "resync" | "verify" = "resync"): void {
    if (!this.backupStatus.isOnline) {
      const s = this.backupStatus.view();
      throw new ServiceError(
        503,
        `Cannot ${what} volume "${name}": backup is ${s.state}` +
          (s.lastError ? ` (last error: ${s.lastError})` : ""),
      );
    }
  }

  resyncProgress(name: string): ResyncProgress {
    return latestResync(this.#require(name)).progress;
  }

  /**
   * Starts (or joins) an online verify of `name` (host/resync/online_verify.ts); 404 for an
   * unknown volume, 503 while the backup is offline, 409 while a resync of it runs (its copies
   * are differences on their way out, not findings) and in split brain (the secondary holds
   * another primary's writes: every difference is expected).
   */
  startVerify(name: string): VerifyProgress {
    const v = this.#require(name);
    if (v.verify.running) return v.verify.progress;
    if (v.resync.running || v.checksumResync.running) {
      throw new ServiceError(
        409,
        `Cannot verify volume "${name}": a ${v.checksumResync.running ? "checksum" : "plain"} ` +
          `resync of it is running; verify once it is done`,
      );
    }
    if (v.cycles?.running) {
      throw new ServiceError(
        409,
        `Cannot verify volume "${name}": a cycle of it is running; verify once it is done`,
      );
    }
    if (v.trust.trust === "split-brain") {
      throw new ServiceError(
        409,
        `Cannot verify volume "${name}": ${v.trust.plainResyncRefusal()}`,
      );
    }
    this.#requireBackupOnline(name, "verify");
    void v.verify.start();
    return v.verify.progress;
  }

  /**
   * Runs one cycle of the cycle-mode volume `name` now (or joins the running one): 404 for an
   * unknown volume, 409 for a journal-mode volume, while it may not be mirrored (trust, fence,
   * activity marks not yet promoted, a checksum resync running), 503 while the backup is offline.
   */
  startCycle(name: string): CycleProgress {
    const cycles = this.#requireCycles(name);
    if (cycles.running) {
      throw new ServiceError(409, `A cycle of volume "${name}" is already running`);
    }
    try {
      void cycles.start();
    } catch (err) {
      if (err instanceof CycleRefusedError) throw new ServiceError(err.status, err.message);
      throw err;
    }
    return cycles.progress;
  }

  /** The latest cycle of the cycle-mode volume `name` (404 unknown, 409 journal mode). */
  cycleProgress(name: string): CycleProgress {
    return this.#requireCycles(name).progress;
  }

  #requireCycles(name: string): CycleMirror {
    const v = this.#require(name);
    if (!v.cycles) {
      throw new ServiceError(
        409,
        `Volume "${name}" is mirrored in ${v.mirror} mode, not in cycles (--mirror ${name}=cycles)`,
      );
    }
    return v.cycles;
  }

  verifyProgress(name: string): VerifyProgress {
    return this.#require(name).verify.progress;
  }

  /** The agent's status: components, mode and volumes. */
  status(): HostStatus {
    return statusView({
      hostId: this.opts.hostId,
      instance: this.instance,
      advertiseUrl: this.opts.advertiseUrl,
      forking: this.opts.forking !== false,
      backup: this.backupStatus.view(),
      ack: this.backupLink.ack,
      unhardened: {
        uncoveredRegions: this.backupLink.uncoveredRegions,
        regionsCovered: this.backupLink.regionsCovered,
      },
      linkFrames: this.backupLink.framesSent,
      trackerError: this.#lease.trackerError,
      tracker: this.trackerHealth.view(),
      trackerUrl: this.opts.tracker.baseUrl,
      trackers: this.opts.tracker.trackers?.(),
      backupUrl: this.opts.backup.baseUrl,
      startedAt: this.#startedAt,
      now: this.opts.clock.now(),
      volumes: this.volumes,
      isRegistered: (name) => this.#lease.isRegistered(name),
    });
  }

  async close(): Promise<void> {
    this.#events.stop();
    for (const v of this.#volumes.values()) v.cycles?.stop();
    await this.backupLink.close();
    this.#lease.stop();
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
    const v = await openVolumeStack({
      ...opts,
      instance: this.instance,
      volume: cfg,
      backup: this.backupLink,
      reRegister: () => this.#lease.renewNow(cfg.name),
      writer: this.backupLink.writer,
      secondary: opts.backup.checksums ? (opts.backup as Required<HostBackup>) : undefined,
      submitter: this.backupLink.submitterFor(cfg.name),
    });
    this.#volumes.set(cfg.name, v);
    this.backupLink.addVolume(v.name, v.sizeBytes, v.lease);
    v.lease.onFenced(() => void this.#lookUpHolder(v));
  }

  /**
   * Before the first registration: the lease epochs the backup's fence holds for our volumes
   * become our claim. A tracker that lost its record (or was restored from an older copy) would
   * otherwise hand this restarted agent an epoch the backup refuses as fenced. A backup that does
   * not answer is no reason to wait: the claim is only needed when it has a fence.
   */
  async #claimBackupLeaseEpochs(): Promise<void> {
    try {
      for (const b of (await this.opts.backup.listVolumes?.()) ?? []) {
        this.#volumes.get(b.name)?.lease.saw(b.leaseEpoch);
      }
    } catch (err) {
      logLine("host", "warn", `backup volumes not read at start: ${(err as Error).message}`);
    }
  }

  /** A fenced volume's refusals name the new holder: the tracker's record says who it is. */
  async #lookUpHolder(v: HostVolume): Promise<void> {
    try {
      const info = await this.opts.tracker.getVolume(v.name);
      if (info.ownerInstance === this.instance) return; // the refusal came from elsewhere
      v.lease.setHolder(
        `host "${info.ownerHost}" (instance ${info.ownerInstance ?? "unknown"}, ${info.ownerUrl})`,
      );
    } catch { /* the tracker may be away; the refusal's own words stay */ }
  }

  /** A resync whose cycle committed has brought the stage opened at the backup's return in. */
  #committed(v: HostVolume, done: ResyncProgress): void {
    if (done.cycle === "committed") v.stageOpen = false;
  }

  async #autoResync(): Promise<void> {
    for (const v of this.#volumes.values()) {
      if (v.cycles) continue; // its next cycle is its resync
      const refusal = v.trust.plainResyncRefusal();
      if (refusal) {
        logLine("host", "warn", `automatic resync of "${v.name}" not started: ${refusal}`);
        continue;
      }
      try {
        const info = await this.opts.tracker.getVolume(v.name);
        const needed = info.dirtyRegions > 0 || v.stageOpen;
        if (needed && this.backupStatus.isOnline && !v.checksumResync.running) {
          v.resyncMode = "plain";
          void v.resync.start().then((done) => this.#committed(v, done));
        }
      } catch (err) {
        logLine(
          "host",
          "warn",
          `automatic resync of "${v.name}" not started: ${(err as Error).message}`,
        );
      }
    }
  }
}
