/** The ports the host agent needs of the other services (their clients provide them). */
import type {
  ClearRequest,
  ClearResponse,
  LogPage,
  TrackRequest,
  VolumeInfo,
  VolumeRegistration,
} from "../../src/schemas.ts";
import type { TargetView } from "../../src/failover.ts";
import type { ActivityTracker } from "../fork/activity_record.ts";
import type { ChecksumRequest } from "../../src/region_checksums.ts";

/** What the agent needs of the tracker (tracker/client.ts provides it). */
export interface HostTracker extends ActivityTracker {
  /** Where the tracker is reached (shown in the status); optional so fakes may omit it. */
  readonly baseUrl?: string;
  /** Each tracker of a failover list and which one is current (shown in the status); optional. */
  trackers?(): TargetView[];
  registerVolume(name: string, reg: VolumeRegistration): Promise<VolumeInfo>;
  track(req: TrackRequest): Promise<unknown>;
  promoteActivity(name: string, host: string): Promise<{ regionsPromoted: number }>;
  getVolume(name: string): Promise<VolumeInfo>;
  log(name: string, query?: { limit?: number }): AsyncGenerator<LogPage>;
  clear(name: string, req: ClearRequest): Promise<ClearResponse>;
}

/**
 * What the backup answers a registration with: the secondary's generation and the primary
 * generation that last wrote it (issue 9; absent from backups without generations).
 */
export interface SecondaryRegistered {
  generation?: string;
  writerGeneration?: string | null;
}

/** What the agent needs of the backup (backup/client.ts provides it). */
export interface HostBackup {
  /** Where the backup's HTTP API is reached (shown in the status); optional for fakes. */
  readonly baseUrl?: string;
  /**
   * With `generation`: the registering primary's generation (issue 9), adopted on request; with
   * `leaseEpoch`: the tracker's lease epoch this agent holds (a fenced one is refused, 409).
   */
  registerVolume(
    name: string,
    sizeBytes: number,
    epoch?: number,
    generation?: { primaryGeneration: string; adoptPrimary?: boolean },
    leaseEpoch?: number,
  ): Promise<SecondaryRegistered | void>;
  writeBatch(
    volume: string,
    body: Uint8Array,
    epoch?: number,
    leaseEpoch?: number,
  ): Promise<unknown>;
  healthz(): Promise<boolean>;
  /**
   * The backup's volumes with their fences (GET /v1/volumes); optional: a restarting agent claims
   * the lease epochs the backup knows, so a tracker that lost its record does not fence it.
   */
  listVolumes?(): Promise<{ name: string; leaseEpoch?: number }[]>;
  /** Where the backup's host link listens (GET /v1/link). */
  linkAddresses(): Promise<string[]>;
  /**
   * The backup's own view (GET /v1/status): `degraded` with a reason when it cannot take writes.
   * Optional: without it the probe cannot tell a degraded backup until a write fails.
   */
  status?(): Promise<{ state?: "ok" | "degraded"; reason?: string | null }>;
  /** Digests of the secondary's regions (checksum resync); optional so test fakes may omit it. */
  checksums?(volume: string, req: ChecksumRequest): Promise<Uint8Array>;
}
