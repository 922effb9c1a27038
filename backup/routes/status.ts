/** `GET /v1/status` and `POST /v1/flush`: the journal's and applier's progress, and waiting on it. */
import { Hono } from "hono";
import { ServiceError } from "../../src/errors.ts";
import type { BackupStatus } from "../../src/schemas.ts";
import type { Applier } from "../applier.ts";
import type { CycleStages } from "../cycle_stage.ts";
import type { FlushResponse } from "../backup_schemas.ts";
import type { Journal } from "../journal.ts";
import { backupRoutes } from "../paths.ts";
import type { SecondaryStore } from "../secondary_store.ts";

export function statusApp(
  deps: { journal: Journal; applier: Applier; store: SecondaryStore; stages?: CycleStages },
) {
  const { journal, applier, store } = deps;
  return new Hono()
    .get(backupRoutes.status, (c) => {
      const reason = journal.degradedReason();
      return c.json<BackupStatus>({
        state: reason === null ? "ok" : "degraded",
        reason,
        applierError: applier.failure?.message ?? null,
        journalBytesPending: journal.pendingBytes,
        journalBytesMax: journal.journalBytesMax,
        recordsAcknowledged: journal.recordsAcknowledged,
        recordsApplied: applier.recordsApplied,
        volumes: store.list().map((v) => v.name),
        openCycles: deps.stages?.openCycles() ?? [],
        cyclesCommitted: deps.stages?.commits ?? 0,
        cyclesSpilled: deps.stages?.spills ?? 0,
      });
    })
    .post(backupRoutes.flush, async (c) => {
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
