/** `GET /v1/volumes` and `PUT /v1/volumes/{name}`: the secondary volumes and their registration. */
import {
  apiRoute,
  errorResponses,
  jsonBody,
  jsonResponse,
  newApiApp,
  openApiPath,
} from "../../src/api_route.ts";
import type { Metrics } from "../../src/metrics.ts";
import { volumeParams } from "../../src/schemas.ts";
import {
  type BackupVolumeList,
  backupVolumeList,
  type BackupVolumeRegistered,
  backupVolumeRegistered,
  backupVolumeRegistration,
} from "../backup_schemas.ts";
import type { EpochFence } from "../epoch_fence.ts";
import { backupRoutes } from "../paths.ts";
import type { SecondaryStore } from "../secondary_store.ts";

/** Registration may raise a volume's epoch, which the writes route then enforces. */
export function volumesApp(deps: { store: SecondaryStore; fence: EpochFence; metrics: Metrics }) {
  const { store, fence, metrics } = deps;
  const app = newApiApp();
  apiRoute(app, {
    method: "get",
    path: backupRoutes.volumes,
    summary: "Registered secondary volumes, their sizes and fences",
    tags: ["volumes"],
    responses: { 200: jsonResponse(backupVolumeList, "The volumes") },
  }, (c) =>
    c.json<BackupVolumeList, 200>({
      volumes: store.list().map((v) => ({ ...v, ...fenceOf(fence, v.name) })),
    }, 200));
  apiRoute(app, {
    method: "put",
    path: openApiPath(backupRoutes.volume),
    summary: "Register a secondary volume (created sparse when absent) and raise its fence",
    tags: ["volumes"],
    request: { params: volumeParams, body: jsonBody(backupVolumeRegistration) },
    responses: {
      200: jsonResponse(backupVolumeRegistered, "Registered (it existed)"),
      201: jsonResponse(backupVolumeRegistered, "Created"),
      ...errorResponses({
        400: "A bad field, or an epoch too far ahead",
        409: "Registered with another size, or fenced (an older epoch or lease epoch)",
      }),
    },
  }, async (c) => {
    const { name } = c.req.valid("param");
    const { sizeBytes, epoch, leaseEpoch, primaryGeneration, adoptPrimary } = c.req.valid(
      "json",
    );
    // A bad or fenced epoch is refused before anything (the secondary, the fence) changes.
    fence.check(name, { epoch, leaseEpoch });
    const created = await store.register(name, sizeBytes);
    fence.raise(name, { epoch, leaseEpoch });
    if (created) {
      metrics.count("trackmirror_backup_volumes_created_total", "Secondaries created");
    }
    const gen = primaryGeneration === undefined
      ? store.generationOf(name)
      : await store.recordWriter(name, primaryGeneration, adoptPrimary ?? false);
    const body: BackupVolumeRegistered = { name, sizeBytes, ...gen, ...fenceOf(fence, name) };
    return created ? c.json(body, 201) : c.json(body, 200);
  });
  return app;
}

/** The volume's fence as the API shows it: only the epochs that were registered. */
function fenceOf(fence: EpochFence, name: string): { epoch?: number; leaseEpoch?: number } {
  const epoch = fence.epochOf(name);
  const leaseEpoch = fence.leaseEpochOf(name);
  return {
    ...(epoch === undefined ? {} : { epoch }),
    ...(leaseEpoch === undefined ? {} : { leaseEpoch }),
  };
}
