/**
 * The backup as the host sees it: its status (online, offline, degraded, probing), the epoch, the
 * probe that brings it back, and the persistent link (host/link/link_client.ts) that every mirror
 * write and resync copy travels on.
 *
 * The probe brings the backup back in this order: `/healthz` answers; its `/v1/status` does not
 * say `degraded` (a full or failing journal: the probe fails with `BackupDegradedError`, the
 * status becomes `degraded` and probing backs off, so no write pays a round trip that cannot
 * succeed); every volume is registered over HTTP with the current epoch (that creates the
 * secondary and raises the backup's fence, so nothing an earlier connection left queued can land
 * after what follows); the link endpoints are read from `GET /v1/link` (a unix socket is preferred
 * when the backup offers one on this machine); the link is opened (or reopened) with a HELLO
 * naming the same epoch.
 *
 * `received` mode (seed 002): the backup acknowledges on receipt and hardens later, so when the
 * link fails the union of the volumes' unhardened regions (current ∪ old) may be lost. That union
 * is marked at the tracker before any later write is acknowledged: the fork layer awaits
 * `settled()` before it acknowledges through the tracker, and the probe awaits it before the link
 * is used again. If the tracker cannot take it, `settled()` rejects and writes fail — the
 * invariant wins over availability.
 */
import type { Clock } from "../../src/clock.ts";
import { mergeExtents } from "../../src/extent.ts";
import type { AckMode, LinkVolume } from "../../src/link_protocol.ts";
import { trackExtentsMax } from "../../src/schemas.ts";
import type { MirrorRecord } from "../fork/backup_batcher.ts";
import { LinkClient, type LinkClientOptions } from "../link/link_client.ts";
import { BackupDegradedError, classifyBackupFailure } from "./backup_degraded.ts";
import { ComponentStatus, type ProbeOptions } from "./component_status.ts";
import type { HostBackup, HostTracker, SecondaryRegistered } from "./ports.ts";
import { logLine } from "../../src/events.ts";

export interface BackupLinkOptions {
  hostId: string;
  /** When a mirror write counts as acknowledged (default durable). */
  ack?: AckMode;
  /** Tracking granularity (the unhardened record keeps regions). */
  regionBytes: number;
  /** Where the unhardened union is marked when the link fails. */
  tracker: Pick<HostTracker, "track">;
  clock: Clock;
  probe?: ProbeOptions;
  /** No ack progress for this long fails the link (default link_client's). */
  linkAckTimeoutMs?: number;
  /** The link's address ("tcp://HOST:PORT" or a socket path); default: asked of the backup. */
  linkAddress?: string;
  /** The shared token, sent in the link's HELLO. */
  token?: string;
  /** Makes the link (tests substitute a fake); default: a LinkClient. */
  linkFactory?: (opts: LinkClientOptions) => BackupLinkPort;
  /** Generation checks at every probe (issue 9; host/agent/volume_trust.ts); none when absent. */
  generations?: SecondaryGenerations;
  /**
   * Runs on a newly opened link before the backup is declared online, so what it sends precedes
   * every mirror write on it (issue 10: the agent opens a resync cycle for each dirty volume
   * there, host/agent/cycle_on_return.ts). A failure closes the link and fails the probe.
   */
  beforeOnline?: (
    volumes: string[],
    send: (volume: string, body: Uint8Array) => Promise<void>,
  ) => Promise<void>;
}

/** What the probe asks of each volume's trust (issue 9). */
export interface SecondaryGenerations {
  /** The volume's primary generation, sent with its registration. */
  primaryGeneration(volume: string): string | undefined;
  /** Checks the backup's answer (in sync, secondary replaced, split brain) before going online. */
  checkSecondary(volume: string, answer: SecondaryRegistered | void): Promise<void>;
}

/** What BackupLink needs of a volume's lease (host/fork/lease_guard.ts provides it). */
export interface VolumeLease {
  readonly fenced: unknown;
  readonly leaseEpoch: number | undefined;
  /** Fences the volume when `err` is a fencing refusal of it; returns whether it is fenced. */
  noteRefusal(err: unknown): boolean;
}

/** What BackupLink uses of a link (host/link/link_client.ts provides it). */
export type BackupLinkPort = Pick<
  LinkClient,
  | "failure"
  | "ack"
  | "open"
  | "submit"
  | "submitEncoded"
  | "unhardened"
  | "clearUnhardened"
  | "onFailure"
  | "close"
  | "framesSent"
  | "recordsSent"
>;

/** Where resync copies go: encoded records, acknowledged once durable. */
export interface BatchWriter {
  writeBatch(volume: string, body: Uint8Array): Promise<unknown>;
}

export class BackupLink {
  readonly status: ComponentStatus;
  readonly ack: AckMode;
  /** Resync copies: over the link, resolved when the backup's journal sync covers them. */
  readonly writer: BatchWriter;
  /**
   * Raised whenever the backup goes offline; sent with the volume registration and the HELLO that
   * bring the backup back, so the backup refuses frames and batches the agent gave up on
   * (backup/epoch_fence.ts). Starts at the clock so it also rises across agent restarts.
   */
  #epoch: number;
  /** Volumes the probe registers with the backup: name → size in bytes and lease. */
  readonly #volumes = new Map<string, { sizeBytes: number; lease: VolumeLease | undefined }>();
  #link: BackupLinkPort | undefined;
  /** The epochs (link, and each volume's lease) the current link's HELLO named. */
  #linkKey = "";
  /** Unhardened regions of a failed link not yet marked at the tracker: volume → regions. */
  readonly #uncovered = new Map<string, Set<number>>();
  #covering: Promise<void> | undefined;
  /** Regions marked at the tracker because a link failed in `received` mode (for status). */
  regionsCovered = 0;

  constructor(private readonly backup: HostBackup, private readonly opts: BackupLinkOptions) {
    this.ack = opts.ack ?? "durable";
    this.#epoch = opts.clock.now();
    this.writer = {
      writeBatch: async (volume, body) => await this.#requireLink().submitEncoded(volume, body),
    };
    this.status = new ComponentStatus(
      "backup",
      () => this.#probe(),
      opts.clock,
      opts.probe,
      classifyBackupFailure,
    );
    this.status.onChange((state) => {
      if (state === "offline" || state === "degraded") this.#epoch++;
    });
  }

  get epoch(): number {
    return this.#epoch;
  }

  /** Whether mirror writes are sent to the backup now. */
  get isOnline(): boolean {
    return this.status.isOnline;
  }

  /** Regions whose loss a failed link may have caused and that are not yet marked. */
  get uncoveredRegions(): number {
    let n = 0;
    for (const s of this.#uncovered.values()) n += s.size;
    return n;
  }

  /**
   * Regions of `volume` a backup crash may lose, not yet marked at the tracker (`received` mode:
   * the live link's unhardened union and a failed link's regions still to be marked), ascending.
   * Empty in `durable` mode.
   */
  unhardenedRegions(volume: string): number[] {
    const all = new Set(this.#uncovered.get(volume));
    for (const r of this.#link?.unhardened(volume)?.unionRegions() ?? []) all.add(r);
    return [...all].sort((a, b) => a - b);
  }

  /** RECORDS frames and records sent on the current link (for status and the bench). */
  get framesSent(): number {
    return this.#link?.framesSent ?? 0;
  }

  /**
   * Adds a volume the probe registers with the backup before declaring it online; with `lease`,
   * the volume is registered with its lease epoch, and left out once fenced.
   */
  addVolume(name: string, sizeBytes: number, lease?: VolumeLease): void {
    this.#volumes.set(name, { sizeBytes, lease });
  }

  /** The fork layer's port to the backup for one volume. */
  submitterFor(volume: string): { submit(rec: MirrorRecord): Promise<void> } {
    // Not async: one promise a write (the link's) instead of two.
    return {
      submit: (rec) => {
        try {
          return this.#requireLink().submit(volume, rec);
        } catch (err) {
          return Promise.reject(err);
        }
      },
    };
  }

  /** A mirror write failed: the backup is offline; in `received` mode its loss gets covered. */
  markOffline(err: unknown): void {
    this.#collectUnhardened();
    this.status.markOffline(err);
  }

  /**
   * Resolves once every region a failed link may have lost is marked at the tracker (at once when
   * none is pending); rejects when the tracker does not take them (the next call tries again).
   */
  settled(): Promise<void> {
    if (this.#uncovered.size === 0) return Promise.resolve();
    this.#covering ??= this.#cover().finally(() => this.#covering = undefined);
    return this.#covering;
  }

  async close(): Promise<void> {
    this.status.stop();
    await this.#link?.close();
  }

  #requireLink(): BackupLinkPort {
    const link = this.#link;
    if (!link || link.failure) {
      throw new Error(`The backup link is down: ${link?.failure?.message ?? "never opened"}`);
    }
    return link;
  }

  /** Moves the failed link's unhardened regions into the set still to be marked. */
  #collectUnhardened(): void {
    const link = this.#link;
    if (!link || link.ack !== "received") return;
    for (const name of this.#volumes.keys()) {
      const regions = link.unhardened(name)?.unionRegions() ?? [];
      if (regions.length === 0) continue;
      const set = this.#uncovered.get(name) ?? new Set<number>();
      for (const r of regions) set.add(r);
      this.#uncovered.set(name, set);
    }
    link.clearUnhardened();
  }

  async #cover(): Promise<void> {
    const regionBytes = this.opts.regionBytes;
    for (const [volume, regions] of [...this.#uncovered]) {
      const extents = mergeExtents(
        [...regions].sort((a, b) => a - b).map((r) => ({
          offset: r * regionBytes,
          length: regionBytes,
        })),
      );
      for (let i = 0; i < extents.length; i += trackExtentsMax) {
        await this.opts.tracker.track({
          volume,
          host: this.opts.hostId,
          extents: extents.slice(i, i + trackExtentsMax),
        });
      }
      this.regionsCovered += regions.size;
      this.#uncovered.delete(volume);
      logLine(
        "host",
        "warn",
        `backup link lost with ${regions.size} regions of volume "${volume}" received but ` +
          `not hardened; they are marked dirty and will be resynced`,
      );
    }
  }

  /**
   * Registers one volume with the backup, with its primary generation when the agent keeps one,
   * and checks the answer's generations before the volume is mirrored again.
   */
  async #register(
    name: string,
    sizeBytes: number,
    epoch: number,
    leaseEpoch: number | undefined,
  ): Promise<void> {
    const gens = this.opts.generations;
    const primaryGeneration = gens?.primaryGeneration(name);
    const answer = await this.backup.registerVolume(
      name,
      sizeBytes,
      epoch,
      primaryGeneration === undefined ? undefined : { primaryGeneration },
      leaseEpoch,
    );
    await gens?.checkSecondary(name, answer);
  }

  /**
   * Makes this primary the writer of `name`'s secondary even though another primary wrote it last
   * (`reconstruct --checksum --discard-secondary`); returns the backup's answer.
   */
  async adoptSecondary(
    name: string,
    primaryGeneration: string,
  ): Promise<SecondaryRegistered | void> {
    const v = this.#volumes.get(name);
    if (v === undefined) throw new RangeError(`Volume "${name}" is not served here`);
    return await this.backup.registerVolume(name, v.sizeBytes, this.#epoch, {
      primaryGeneration,
      adoptPrimary: true,
    }, v.lease?.leaseEpoch);
  }

  /** The backup is usable again when it answers, knows every volume, and the link is up. */
  async #probe(): Promise<void> {
    if (!(await this.backup.healthz())) throw new Error("Backup /healthz did not answer ok");
    const health = await this.backup.status?.();
    if (health?.state === "degraded") {
      throw new BackupDegradedError(health.reason ?? "no reason given");
    }
    await this.settled();
    // Each volume goes with its lease epoch too; one the backup refuses as fenced (another
    // instance took it) is fenced here and left out of the link.
    const epoch = this.#epoch;
    const volumes: LinkVolume[] = [];
    for (const [name, { sizeBytes, lease }] of this.#volumes) {
      if (lease?.fenced) continue; // another instance owns it: nothing more goes to the backup
      const leaseEpoch = lease?.leaseEpoch;
      try {
        await this.#register(name, sizeBytes, epoch, leaseEpoch);
      } catch (err) {
        if (lease?.noteRefusal(err)) continue;
        throw err;
      }
      volumes.push({
        name,
        sizeBytes,
        epoch,
        ...(leaseEpoch === undefined ? {} : { leaseEpoch }),
      });
    }
    const addresses = this.opts.linkAddress ? [] : await this.backup.linkAddresses();
    const address = this.opts.linkAddress ?? addresses.find((a) => !a.startsWith("tcp://")) ??
      addresses.find((a) => a.startsWith("tcp://"));
    if (!address) throw new Error("The backup offers no link (GET /v1/link is empty)");
    const old = this.#link;
    // Still up after a failure that was not the link's: keep it if its HELLO named these epochs
    // (link and lease). One of older epochs is closed: the registration above raised the
    // backup's fence past it, so its next batch would be refused (409) and the backup go offline
    // once more.
    const linkKey = JSON.stringify([epoch, volumes.map((v) => [v.name, v.leaseEpoch])]);
    if (old && !old.failure && this.#linkKey === linkKey) return;
    if (old && !old.failure) {
      this.#link = undefined; // its closing is not a failure of the backup
      await old.close();
    }
    const link = (this.opts.linkFactory ?? ((o) => new LinkClient(o)))({
      address,
      hostId: this.opts.hostId,
      ack: this.ack,
      volumes,
      regionBytes: this.opts.regionBytes,
      ackTimeoutMs: this.opts.linkAckTimeoutMs,
      token: this.opts.token,
    });
    await link.open();
    if (this.opts.beforeOnline) {
      try {
        await this.opts.beforeOnline(
          volumes.map((v) => v.name),
          (volume, body) => link.submitEncoded(volume, body),
        );
      } catch (err) {
        await link.close();
        throw err;
      }
    }
    link.onFailure((err) => {
      if (this.#link === link) this.markOffline(err);
    });
    this.#link = link;
    this.#linkKey = linkKey;
  }
}
