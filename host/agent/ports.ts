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
  /** With `generation`: the registering primary's generation (issue 9), adopted on request. */
  registerVolume(
    name: string,
    sizeBytes: number,
    epoch?: number,
    generation?: { primaryGeneration: string; adoptPrimary?: boolean },
  ): Promise<SecondaryRegistered | void>;
  writeBatch(volume: string, body: Uint8Array, epoch?: number): Promise<unknown>;
  healthz(): Promise<boolean>;
  /** Where the backup's host link listens (GET /v1/link). */
  linkAddresses(): Promise<string[]>;
}
