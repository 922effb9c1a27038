/**
 * `POST /v1/volumes/{name}/writes`: a batch of journal records, acknowledged once it is durable
 * in the journal. The body is bounded before it is read and verified whole before it is appended.
 */
import { Hono } from "hono";
import { badRequest, notFound, tooLarge } from "../../src/errors.ts";
import type { Metrics } from "../../src/metrics.ts";
import { volumeParams, type WriteBatchResponse } from "../../src/schemas.ts";
import { validate } from "../../src/validate.ts";
import { epochHeader, leaseEpochHeader } from "../backup_schemas.ts";
import { checkBatch } from "../batch_check.ts";
import { readBodyBounded } from "../body_reader.ts";
import type { EpochFence } from "../epoch_fence.ts";
import type { Journal } from "../journal.ts";
import { backupRoutes } from "../paths.ts";
import type { SecondaryStore } from "../secondary_store.ts";

/** What the writes route works on. */
export interface WritesDeps {
  journal: Journal;
  store: SecondaryStore;
  fence: EpochFence;
  metrics: Metrics;
  /** Largest batch body accepted; larger ones get 413. */
  batchBytesMax: number;
}

/** An optional epoch header of a write batch. */
function epochParam(header: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const epoch = Number(text);
  if (!/^\d{1,16}$/.test(text) || !Number.isSafeInteger(epoch)) {
    throw badRequest(`Header ${header} "${text}" must be a whole number`);
  }
  return epoch;
}

export function writesApp(deps: WritesDeps) {
  const { journal, store, fence, metrics, batchBytesMax } = deps;
  return new Hono().post(backupRoutes.writes, validate("param", volumeParams), async (c) => {
    const { name } = c.req.valid("param");
    const sizeBytes = store.sizeOf(name);
    if (sizeBytes === undefined) throw notFound(`Volume "${name}" is not registered`);
    // Refuse a full journal before reading a body that could not be kept anyway (a body too
    // large ever to fit is told so first: 413 is final, 503 says retry).
    const declared = Number(c.req.header("content-length") ?? "1");
    if (declared > batchBytesMax) {
      throw tooLarge(`Body of ${declared} bytes exceeds batchBytesMax ${batchBytesMax}`);
    }
    journal.checkRoom(Number.isSafeInteger(declared) ? declared : 1);
    const body = await readBodyBounded(c.req.raw, batchBytesMax);
    const epoch = epochParam(epochHeader, c.req.header(epochHeader));
    const leaseEpoch = epochParam(leaseEpochHeader, c.req.header(leaseEpochHeader));
    const batch = checkBatch(body, name, sizeBytes);
    const admit = epoch === undefined && leaseEpoch === undefined
      ? undefined
      : () => fence.admit(name, epoch, leaseEpoch);
    await journal.append(body, batch.records, admit);
    metrics.count("trackmirror_backup_batches_total", "Batches acknowledged over HTTP");
    metrics.count(
      "trackmirror_backup_batch_bytes_total",
      "Batch bytes acknowledged over HTTP",
      batch.bytes,
    );
    return c.json<WriteBatchResponse>(batch);
  });
}
