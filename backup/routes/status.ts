/**
 * `GET /v1/status` and `POST /v1/flush`: the journal's and applier's progress, and waiting on it.
 * The status carries each volume's lag (backup/volume_lag.ts) and ISO 8601 times (issue 11).
 */
import { apiRoute, errorResponses, jsonResponse, newApiApp } from "../../src/api_route.ts";
import { ServiceError } from "../../src/errors.ts";
import { isoTime } from "../../src/iso_time.ts";
import { type BackupStatus, backupStatus } from "../../src/schemas.ts";
import type { Applier } from "../applier.ts";
import type { CycleStages } from "../cycle_stage.ts";
import { type FlushResponse, flushResponse } from "../backup_schemas.ts";
import type { Journal } from "../journal.ts";
import { backupRoutes } from "../paths.ts";
import type { SecondaryStore } from "../secondary_store.ts";
import { volumeLagOf } from "../volume_lag.ts";

export function statusApp(
  deps: { journal: Journal; applier: Applier; store: SecondaryStore; stages?: CycleStages },
) {
  const { journal, applier, store } = deps;
  const lag = volumeLagOf(journal);
  const startedAt = Date.now();
  const app = newApiApp();
  apiRoute(app, {
    method: "get",
    path: backupRoutes.status,
    summary: "Journal and applier progress, each volume's lag, open cycles",
    tags: ["status"],
    responses: { 200: jsonResponse(backupStatus, "The backup's status") },
  }, (c) => {
    const reason = journal.degradedReason();
    return c.json<BackupStatus, 200>({
      state: reason === null ? "ok" : "degraded",
      reason,
      applierError: applier.failure?.message ?? null,
      journalBytesPending: journal.pendingBytes,
      journalBytesMax: journal.journalBytesMax,
      recordsAcknowledged: journal.recordsAcknowledged,
      recordsApplied: applier.recordsApplied,
      volumes: store.list().map((v) => v.name),
      lag: store.list().map((v) => lag.view(v.name)),
      openCycles: deps.stages?.openCycles() ?? [],
      cyclesCommitted: deps.stages?.commits ?? 0,
      cyclesSpilled: deps.stages?.spills ?? 0,
      startedAt,
      startedAtIso: isoTime(startedAt),
    }, 200);
  });
  apiRoute(app, {
    method: "post",
    path: backupRoutes.flush,
    summary: "Wait until every acknowledged record is applied and the secondaries synced",
    tags: ["status"],
    responses: {
      200: jsonResponse(flushResponse, "Flushed"),
      ...errorResponses({ 500: "The applier is failing", 503: "Interrupted (closing)" }),
    },
  }, async (c) => {
    if (applier.failure) {
      throw new ServiceError(500, `The applier is failing: ${applier.failure.message}`);
    }
    try {
      await applier.waitApplied(journal.recordsAcknowledged);
    } catch (err) {
      throw new ServiceError(503, `Flush interrupted: ${(err as Error).message}`);
    }
    return c.json<FlushResponse, 200>({ recordsApplied: applier.recordsApplied }, 200);
  });
  return app;
}
