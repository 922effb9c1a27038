/**
 * Telling a degraded backup (it answers, but cannot take writes: journal full, a journal write or
 * sync failed) from an offline one (no answer). Both stop mirror writes and are probed with
 * backoff; the difference is what status and metrics tell the operator, so a full journal never
 * hides behind `offline` or, worse, behind `online` while every write pays a failed round trip.
 */
import { ServiceCallError } from "../../src/http_client.ts";
import { LinkRefusedError } from "../link/link_client.ts";

/** The backup's own status says it cannot take writes (`GET /v1/status` state `degraded`). */
export class BackupDegradedError extends Error {
  constructor(readonly reason: string) {
    super(`The backup cannot take writes: ${reason}`);
    this.name = "BackupDegradedError";
  }
}

/** `degraded` for a refusal the backup answered with 503 (or said so in its status). */
export function classifyBackupFailure(err: unknown): "offline" | "degraded" {
  if (err instanceof BackupDegradedError) return "degraded";
  if (err instanceof LinkRefusedError && err.status === 503) return "degraded";
  if (err instanceof ServiceCallError && err.status === 503) return "degraded";
  return "offline";
}
