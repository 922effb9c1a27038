/**
 * The backup's HTTP routes over its journal, applier and secondary store. Paths are a contract
 * with the host agent (backup/client.ts).
 */
import { Hono } from "hono";
import type { Context } from "hono";
import { badRequest, notFound, ServiceError, tooLarge } from "../src/errors.ts";
import type { Metrics } from "../src/metrics.ts";
import type { BackupStatus, WriteBatchResponse } from "../src/schemas.ts";
import { checkName } from "../src/schemas.ts";
import { applyServiceBasics } from "../src/service.ts";
import { validate } from "../src/validate.ts";
import type { Applier } from "./applier.ts";
import { checkBatch } from "./batch_check.ts";
import { backupVolumeRegistration } from "./backup_schemas.ts";
import type { BackupVolumeList, FlushResponse } from "./backup_schemas.ts";
import { epochHeader } from "./backup_schemas.ts";
import { EpochFence } from "./epoch_fence.ts";
import { readBodyBounded } from "./body_reader.ts";
import type { Journal } from "./journal.ts";
import { backupOpenApi } from "./openapi.ts";
import type { SecondaryStore } from "./secondary_store.ts";

/** What the routes work on. */
export interface BackupRouteDeps {
  journal: Journal;
  applier: Applier;
  store: SecondaryStore;
  metrics: Metrics;
  /** Largest batch body accepted; larger ones get 413. */
  batchBytesMax: number;
  token?: string;
}

/** The `:name` path parameter, checked before it can become a file name. */
function volumeParam(c: Context): string {
  const name = c.req.param("name") ?? "";
  try {
    return checkName("Volume", name);
  } catch (err) {
    throw badRequest((err as Error).message);
  }
}

/** The optional epoch header of a write batch. */
function epochParam(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const epoch = Number(text);
  if (!/^\d{1,16}$/.test(text) || !Number.isSafeInteger(epoch)) {
    throw badRequest(`Header ${epochHeader} "${text}" must be a whole number`);
  }
  return epoch;
}

/** Builds the backup's Hono app. */
export function createBackupRoutes(deps: BackupRouteDeps) {
  const { journal, applier, store, metrics } = deps;
  const fence = new EpochFence();
  const app = new Hono();
  applyServiceBasics(app, "backup", { token: deps.token, metrics });

  return app
    .get("/openapi.json", (c) => c.json(backupOpenApi))
    .get("/v1/volumes", (c) => c.json<BackupVolumeList>({ volumes: store.list() }))
    .put("/v1/volumes/:name", validate("json", backupVolumeRegistration), async (c) => {
      const name = volumeParam(c);
      const { sizeBytes, epoch } = c.req.valid("json");
      const created = await store.register(name, sizeBytes);
      if (epoch !== undefined) fence.raise(name, epoch);
      if (created) metrics.count("trackmirror_backup_volumes_created_total", "Secondaries created");
      return c.json({ name, sizeBytes }, created ? 201 : 200);
    })
    .post("/v1/volumes/:name/writes", async (c) => {
      const name = volumeParam(c);
      const sizeBytes = store.sizeOf(name);
      if (sizeBytes === undefined) throw notFound(`Volume "${name}" is not registered`);
      // Refuse a full journal before reading a body that could not be kept anyway (a body too
      // large ever to fit is told so first: 413 is final, 503 says retry).
      const declared = Number(c.req.header("content-length") ?? "1");
      if (declared > deps.batchBytesMax) {
        throw tooLarge(`Body of ${declared} bytes exceeds batchBytesMax ${deps.batchBytesMax}`);
      }
      journal.checkRoom(Number.isSafeInteger(declared) ? declared : 1);
      const body = await readBodyBounded(c.req.raw, deps.batchBytesMax);
      const epoch = epochParam(c.req.header(epochHeader));
      const batch = checkBatch(body, name, sizeBytes);
      const admit = epoch === undefined ? undefined : () => fence.admit(name, epoch);
      await journal.append(body, batch.records, admit);
      metrics.count("trackmirror_backup_batches_total", "Batches acknowledged over HTTP");
      metrics.count(
        "trackmirror_backup_batch_bytes_total",
        "Batch bytes acknowledged over HTTP",
        batch.bytes,
      );
      return c.json<WriteBatchResponse>(batch);
    })
    .get("/v1/status", (c) =>
      c.json<BackupStatus>({
        journalBytesPending: journal.pendingBytes,
        journalBytesMax: journal.journalBytesMax,
        recordsAcknowledged: journal.recordsAcknowledged,
        recordsApplied: applier.recordsApplied,
        volumes: store.list().map((v) => v.name),
      }))
    .post("/v1/flush", async (c) => {
      if (applier.failure) {
        throw new ServiceError(500, `The applier is failing: ${applier.failure.message}`);
      }
      try {
        await applier.waitApplied(journal.recordsAcknowledged);
      } catch (err) {
        throw new ServiceError(503, `Flush interrupted: ${(err as Error).message}`);
      }
      return c.json<FlushResponse>({ recordsApplied: applier.recordsApplied });
    });
}

/** The backup app's type, for a typed `hc` client. */
export type BackupApp = ReturnType<typeof createBackupRoutes>;
