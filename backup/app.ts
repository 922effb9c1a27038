/**
 * The backup's Hono app: one sub-app per resource (volumes, writes, status and flush, checksums,
 * points, the link's addresses) joined with `app.route`, behind the shared service basics (auth,
 * error shape, /healthz, /metrics, /openapi.json and /docs built from the routes' schemas). Paths
 * come from backup/paths.ts, which the client shares.
 */
import { apiRoute, jsonResponse, newApiApp } from "../src/api_route.ts";
import type { Metrics } from "../src/metrics.ts";
import { applyServiceBasics } from "../src/service.ts";
import type { Applier } from "./applier.ts";
import type { EpochFence } from "./epoch_fence.ts";
import type { Journal } from "./journal.ts";
import { backupRoutes } from "./paths.ts";
import { linkResponse } from "./backup_schemas.ts";
import type { CycleStages } from "./cycle_stage.ts";
import { checksumsApp } from "./routes/checksums.ts";
import { pointsApp } from "./routes/points.ts";
import { statusApp } from "./routes/status.ts";
import { volumesApp } from "./routes/volumes.ts";
import { writesApp } from "./routes/writes.ts";
import type { SecondaryStore } from "./secondary_store.ts";

/** What the app works on. */
export interface BackupAppDeps {
  journal: Journal;
  applier: Applier;
  store: SecondaryStore;
  /** Cycle stages and points (issue 10); absent in apps built without them (tests). */
  stages?: CycleStages;
  metrics: Metrics;
  /** Largest batch body accepted; larger ones get 413. */
  batchBytesMax: number;
  /** The epoch fence, shared with the link server: one order for a volume's writes. */
  fence: EpochFence;
  /** Where the link server listens ("tcp://host:port", socket paths); empty without one. */
  linkAddresses: () => string[];
  /** Bearer token guarding every route but /healthz. */
  token?: string;
}

/** Builds the backup's Hono app. */
export function createBackupApp(deps: BackupAppDeps) {
  const { journal, applier, store, metrics, batchBytesMax, fence } = deps;
  const app = newApiApp();
  applyServiceBasics(app, "backup", {
    token: deps.token,
    metrics,
    description:
      "Takes mirror writes from host agents into a checksummed journal (durable before " +
      "it answers) and applies them in order to the secondary volumes.",
  });
  const link = newApiApp();
  apiRoute(link, {
    method: "get",
    path: backupRoutes.link,
    summary: "Where the host link (the framed write stream) listens",
    tags: ["link"],
    responses: { 200: jsonResponse(linkResponse, "The link's addresses") },
  }, (c) => c.json({ addresses: deps.linkAddresses() }, 200));
  return app
    .route("/", volumesApp({ store, fence, metrics }))
    .route("/", writesApp({ journal, store, fence, metrics, batchBytesMax }))
    .route("/", statusApp({ journal, applier, store, stages: deps.stages }))
    .route("/", deps.stages ? pointsApp({ store, stages: deps.stages }) : newApiApp())
    .route("/", checksumsApp({ journal, applier, store, metrics, stages: deps.stages }))
    .route("/", link);
}

/** The backup app's type, for a typed `hc` client. */
export type BackupApp = ReturnType<typeof createBackupApp>;
