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
    .get(backupRoutes.volumes, (c) =>
      c.json<BackupVolumeList>({
        volumes: store.list().map((v) => ({ ...v, ...fenceOf(fence, v.name) })),
      }))
    .put(
      backupRoutes.volume,
      validate("param", volumeParams),
      validate("json", backupVolumeRegistration),
      async (c) => {
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
        return c.json<BackupVolumeRegistered>(
          { name, sizeBytes, ...gen, ...fenceOf(fence, name) },
          created ? 201 : 200,
        );
      },
    );
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
