/**
 * The document `deno task status --json` prints (and the table is drawn from): the whole system
 * as found from the tracker — its volumes, their owners' host agents, and the backups those name.
 * `format` is 1; fields are only ever added. Times are epoch ms with an ISO 8601 twin (`...Iso`),
 * ages and lags in seconds, sizes in bytes.
 *
 * `health` and `exitCode` (stable, documented in the README):
 *   0 healthy  — every component online, every volume in sync;
 *   1 degraded — all serving, but something is dirty, lagging, resyncing, untrusted or degraded;
 *   3 down     — the tracker, a host agent or a backup does not answer, the tracker's store does
 *                not answer (its `/v1/status` says so: e.g. etcd without quorum), a host sees
 *                its backup or tracker offline, or a volume is not served (fenced, or unknown
 *                to its owner).
 * (2 is bad flags, before anything is asked.)
 */
import type { ComponentState, ResyncProgress } from "../host_schemas.ts";
import type { StoreHealth } from "../schemas.ts";

export const statusFormat = 1;

/** Exit codes of `deno task status`. */
export const statusExit = { healthy: 0, degraded: 1, badFlags: 2, down: 3 } as const;

export type Health = "healthy" | "degraded" | "down";

/** A component as the status command (or a host agent) found it. */
export interface ComponentHealth {
  url: string;
  state: "online" | "degraded" | "offline";
  /** Since when it is in that state (epoch ms): its start when online; null when unknown. */
  since: number | null;
  sinceIso: string | null;
  /** Why it is not online (or the last error it reported), null when none. */
  error: string | null;
}

/** One host agent: found as the owner of a volume at the tracker. */
export interface HostRow extends ComponentHealth {
  id: string | null;
  mode: "mirroring" | "tracking" | "pass-through" | null;
  ack: "durable" | "received" | null;
  /** The agent's own view of its backup and tracker (its component status table). */
  backup: HostComponentView | null;
  tracker: HostComponentView | null;
}

export interface HostComponentView {
  url: string | null;
  state: ComponentState | "unknown";
  since: number | null;
  sinceIso: string | null;
  lastError: string | null;
}

/** One backup, as the command reached it at the URL a host agent names. */
export interface BackupRow extends ComponentHealth {
  journalBytesPending: number | null;
  journalBytesMax: number | null;
  recordsAcknowledged: number | null;
  recordsApplied: number | null;
}

export interface VolumeRow {
  name: string;
  sizeBytes: number;
  regionBytes: number;
  ownerHost: string;
  ownerUrl: string;
  /** Whether the owner's agent serves the volume; null when it did not answer. */
  served: boolean | null;
  /** The owner's mode (null when it did not answer). */
  mode: HostRow["mode"];
  ack: HostRow["ack"];
  /** The backup the owner forks to (null when the owner did not say). */
  backupUrl: string | null;
  inSync: boolean;
  /** Every in-sync rule that fails (src/status/in_sync.ts); empty when in sync. */
  notInSync: string[];
  dirty: {
    bytes: number;
    regions: number;
    oldestMarkAt: number | null;
    oldestMarkAtIso: string | null;
    /** Age of the oldest mark at the tracker's clock, seconds; null when nothing is dirty. */
    oldestMarkAgeSeconds: number | null;
  };
  /** Journaled at the backup and not yet applied to the secondary; null when unknown. */
  lag: {
    bytes: number;
    records: number;
    seconds: number;
    oldestAt: number | null;
    oldestAtIso: string | null;
  } | null;
  trust: string | null;
  trustReason: string | null;
  fenced: boolean;
  /** The latest resync (running, done or failed); null when none ran or the owner is away. */
  resync: ResyncProgress | null;
  /** The volume's open cycle at the backup (issue 10), null when none. */
  openCycle: { stagedBytes: number; stagedRecords: number; regions: number } | null;
}

export interface SystemStatus {
  format: typeof statusFormat;
  at: number;
  atIso: string;
  health: Health;
  exitCode: 0 | 1 | 3;
  /** Everything that is not healthy, one line each. */
  problems: string[];
  /**
   * `url` is the tracker that answered; with several (`--tracker URL,URL...`, issue 12) `urls`
   * lists each of them with its state (a standby that does not answer makes the system degraded).
   */
  tracker: ComponentHealth & {
    volumes: number | null;
    dirtyVolumes: number | null;
    /**
     * Whether the tracker's store answers, as its background probe last found (`/v1/status`
     * `store`); null from a tracker that does not say. Not ok: the system is down.
     */
    store: StoreHealth | null;
    urls?: { url: string; current: boolean; state: "online" | "offline"; error: string | null }[];
  };
  hosts: HostRow[];
  backups: BackupRow[];
  volumes: VolumeRow[];
}
