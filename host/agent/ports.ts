/** The ports the host agent needs of the other services (their clients provide them). */
import type {
  ClearRequest,
  ClearResponse,
  LogPage,
  TrackRequest,
  VolumeInfo,
  VolumeRegistration,
} from "../../src/schemas.ts";
import type { ActivityTracker } from "../fork/activity_record.ts";

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
  registerVolume(
    name: string,
    sizeBytes: number,
    epoch?: number,
    leaseEpoch?: number,
  ): Promise<void>;
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
}
