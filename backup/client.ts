/**
 * The typed client of the backup service, used by the host agent. Every failure is a
 * `ServiceCallError`; its `offline` is true for no answer, a timeout, 5xx and 503 (journal full).
 */
import { call, callJson, type HttpClientOptions } from "../src/http_client.ts";
import { encodedRecordBytes, encodeRecord, type RecordKind } from "../src/journal_record.ts";
import type { BackupStatus, WriteBatchResponse } from "../src/schemas.ts";
import {
  type ChecksumRequest,
  type ChecksumResponse,
  decodeDigests,
  regionDigestBytes,
} from "../src/region_checksums.ts";
import {
  type BackupVolume,
  type BackupVolumeList,
  type BackupVolumeRegistered,
  epochHeader,
  type FlushResponse,
  leaseEpochHeader,
} from "./backup_schemas.ts";
import { backupPath, backupRoutes } from "./paths.ts";

/** Least time a flush may take before the client gives up: applying a full journal takes a while. */
export const flushTimeoutMsMin = 300_000;

/** One record to put in a batch; `data` is required for a write and ignored for a zero. */
export interface BatchRecord {
  kind: RecordKind;
  volume: string;
  offset: number;
  length: number;
  data?: Uint8Array;
}

/** Encodes records back to back into one buffer: the body of `writeBatch`. */
export function encodeBatch(records: readonly BatchRecord[]): Uint8Array {
  let total = 0;
  for (const rec of records) {
    if (rec.kind === "write" && rec.data?.length !== rec.length) {
      throw new RangeError(
        `Write record at ${rec.offset}+${rec.length} of "${rec.volume}" carries ${
          rec.data?.length ?? "no"
        } data bytes`,
      );
    }
    total += encodedRecordBytes(rec.volume, rec.kind, rec.length);
  }
  const out = new Uint8Array(total);
  let pos = 0;
  for (const rec of records) pos += encodeRecord(rec, out, pos).length;
  return out;
}

/** Calls the backup service at `baseUrl` (the host agent's view of the backup). */
export class BackupClient {
  readonly #base: string;

  constructor(baseUrl: string, private readonly opts: HttpClientOptions = {}) {
    this.#base = baseUrl.replace(/\/+$/, "");
  }

  /** The backup's URL, without a trailing slash. */
  get baseUrl(): string {
    return this.#base;
  }

  /**
   * Registers (creates if absent) the secondary of `name`; 409 when it has another size, or
   * "fenced" when `leaseEpoch` is older than the backup's (another instance took the volume). With
   * `generation`, the registering primary's generation is recorded as the secondary's writer
   * when it has none (or when `adoptPrimary`); the answer names the secondary's generation and
   * writer (issue 9).
   */
  async registerVolume(
    name: string,
    sizeBytes: number,
    epoch?: number,
    generation?: { primaryGeneration: string; adoptPrimary?: boolean },
    leaseEpoch?: number,
  ): Promise<BackupVolumeRegistered> {
    const path = backupPath(backupRoutes.volume, { name });
    const json = {
      sizeBytes,
      ...(epoch === undefined ? {} : { epoch }),
      ...(leaseEpoch === undefined ? {} : { leaseEpoch }),
      ...generation,
    };
    return await callJson<BackupVolumeRegistered>(
      this.#base,
      path,
      { method: "PUT", json },
      this.opts,
    );
  }

  /** Sends a batch (records of `volume` back to back); resolves once it is durable. */
  writeBatch(
    volume: string,
    body: Uint8Array,
    epoch?: number,
    leaseEpoch?: number,
  ): Promise<WriteBatchResponse> {
    const headers: Record<string, string> = { "content-type": "application/octet-stream" };
    if (epoch !== undefined) headers[epochHeader] = String(epoch);
    if (leaseEpoch !== undefined) headers[leaseEpochHeader] = String(leaseEpoch);
    return callJson<WriteBatchResponse>(
      this.#base,
      backupPath(backupRoutes.writes, { name: volume }),
      { method: "POST", body: body as Uint8Array<ArrayBuffer>, headers },
      this.opts,
    );
  }

  /**
   * The SHA-256 digests of the secondary's regions in `req`'s span, 32 bytes each, back to back
   * (src/region_checksums.ts). The backup first applies everything it has taken for the volume,
   * which can take a while behind a long journal: the flush bound applies.
   */
  async checksums(volume: string, req: ChecksumRequest): Promise<Uint8Array> {
    const timeoutMs = Math.max(this.opts.timeoutMs ?? 0, flushTimeoutMsMin);
    const res = await callJson<ChecksumResponse>(
      this.#base,
      backupPath(backupRoutes.checksums, { name: volume }),
      { method: "POST", json: req },
      { ...this.opts, timeoutMs },
    );
    const digests = decodeDigests(res.digests);
    const regions = Math.ceil(req.length / req.regionBytes);
    if (res.offset !== req.offset || digests.length !== regions * regionDigestBytes) {
      throw new Error(
        `Backup answered checksums of ${res.offset}+${res.length} with ${digests.length} digest ` +
          `bytes for a request of ${req.offset}+${req.length} (${regions} regions)`,
      );
    }
    return digests;
  }

  /** Journal and applier counters. */
  status(): Promise<BackupStatus> {
    return callJson<BackupStatus>(this.#base, backupRoutes.status, { method: "GET" }, this.opts);
  }

  /** Resolves once everything acknowledged so far is applied and synced on the secondaries. */
  async flush(): Promise<void> {
    const timeoutMs = Math.max(this.opts.timeoutMs ?? 0, flushTimeoutMsMin);
    await callJson<FlushResponse>(this.#base, backupRoutes.flush, { method: "POST" }, {
      ...this.opts,
      timeoutMs,
    });
  }

  /** Where the backup's host link listens: "tcp://HOST:PORT" and unix socket paths. */
  async linkAddresses(): Promise<string[]> {
    const res = await callJson<{ addresses: string[] }>(
      this.#base,
      backupRoutes.link,
      { method: "GET" },
      this.opts,
    );
    return res.addresses;
  }

  /** True when the service answers `GET /healthz` with 2xx; never throws. */
  async healthz(): Promise<boolean> {
    try {
      const res = await call(this.#base, backupRoutes.healthz, { method: "GET" }, this.opts);
      await res.body?.cancel();
      return true;
    } catch {
      return false;
    }
  }

  /** The registered secondary volumes and their sizes. */
  async listVolumes(): Promise<BackupVolume[]> {
    const list = await callJson<BackupVolumeList>(
      this.#base,
      backupRoutes.volumes,
      { method: "GET" },
      this.opts,
    );
    return list.volumes;
  }
}
