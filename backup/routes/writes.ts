/**
 * `POST /v1/volumes/{name}/writes`: a batch of journal records, acknowledged once it is durable
 * in the journal. The body is bounded before it is read and verified whole before it is appended.
 */
import { z } from "zod";
import {
  apiRoute,
  binaryBody,
  errorResponses,
  jsonResponse,
  newApiApp,
  openApiPath,
} from "../../src/api_route.ts";
import { badRequest, notFound, tooLarge } from "../../src/errors.ts";
import type { Metrics } from "../../src/metrics.ts";
import { volumeParams, type WriteBatchResponse, writeBatchResponse } from "../../src/schemas.ts";
import { epochHeader, epochHeaderValue, leaseEpochHeader } from "../backup_schemas.ts";
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
  if (!epochHeaderValue.safeParse(text).success || !Number.isSafeInteger(epoch)) {
    throw badRequest(`Header ${header} "${text}" must be a whole number`);
  }
  return epoch;
}

/**
 * The epoch headers, documented as header parameters; they are checked by `epochParam` after the
 * volume and the body's size (a 404 or 413 comes before a bad header, as it always has).
 */
const epochHeaderParams = [
  [epochHeader, "The sender's link epoch: batches of an older epoch are refused as fenced"],
  [leaseEpochHeader, "The sender's lease epoch: batches of an older one are refused as fenced"],
].map(([name, description]) => ({
  name,
  in: "header" as const,
  required: false,
  description,
  schema: z.toJSONSchema(epochHeaderValue) as { type: "string"; pattern: string },
}));

export function writesApp(deps: WritesDeps) {
  const { journal, store, fence, metrics, batchBytesMax } = deps;
  const app = newApiApp();
  apiRoute(app, {
    method: "post",
    path: openApiPath(backupRoutes.writes),
    summary: "Journal a batch of records; answered once durable (group commit)",
    tags: ["writes"],
    parameters: epochHeaderParams,
    request: {
      params: volumeParams,
      body: binaryBody("Journal records back to back (src/journal_record.ts)"),
    },
    responses: {
      200: jsonResponse(writeBatchResponse, "Durable in the journal"),
      ...errorResponses({
        400: "Bad framing, checksum, volume name, range or epoch header",
        404: "Unknown volume",
        409: "Fenced: an older epoch or lease epoch",
        413: "Body over batchBytesMax",
        503: "Journal full or failing (backpressure: retry later)",
      }),
    },
  }, async (c) => {
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
    return c.json<WriteBatchResponse, 200>(batch, 200);
  });
  return app;
}
