/** `GET /v1/volumes` and `PUT /v1/volumes/{name}`: the secondary volumes and their registration. */
import { Hono } from "hono";
import type { Metrics } from "../../src/metrics.ts";
import { volumeParams } from "../../src/schemas.ts";
import { validate } from "../../src/validate.ts";
import {
  type BackupVolumeList,
  type BackupVolumeRegistered,
  backupVolumeRegistration,
} from "../backup_schemas.ts";
import type { EpochFence } from "../epoch_fence.ts";
import { backupRoutes } from "../paths.ts";
import type { SecondaryStore } from "../secondary_store.ts";

/** Registration may raise a volume's epoch, which the writes route then enforces. */
export function volumesApp(deps: { store: SecondaryStore; fence: EpochFence; metrics: Metrics }) {
  const { store, fence, metrics } = deps;
  return new Hono()
    .get(backupRoutes.volumes, (c) => c.json<BackupVolumeList>({ volumes: store.list() }))
    .put(
      backupRoutes.volume,
      validate("param", volumeParams),
      validate("json", backupVolumeRegistration),
      async (c) => {
        const { name } = c.req.valid("param");
        const { sizeBytes, epoch, primaryGeneration, adoptPrimary } = c.req.valid("json");
        const created = await store.register(name, sizeBytes);
        if (epoch !== undefined) fence.raise(name, epoch);
        if (created) {
          metrics.count("trackmirror_backup_volumes_created_total", "Secondaries created");
        }
        const gen = primaryGeneration === undefined
          ? store.generationOf(name)
          : await store.recordWriter(name, primaryGeneration, adoptPrimary ?? false);
        return c.json<BackupVolumeRegistered>(
          { name, sizeBytes, ...gen },
          created ? 201 : 200,
        );
      },
    );
}
