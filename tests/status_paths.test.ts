/**
 * The status gather (src/status/status_gather.ts) calls the services with paths of its own, since
 * src/ may not import their route tables: they must stay the paths those tables name.
 */
import assert from "node:assert/strict";
import { backupRoutes } from "../backup/paths.ts";
import { hostPaths } from "../host/app.ts";
import { statusPaths } from "../src/status/status_gather.ts";
import { trackerPaths } from "../tracker/client.ts";

Deno.test("the status gather's paths are the services' own", () => {
  assert.equal(statusPaths.trackerHealth, trackerPaths.healthz);
  assert.equal(statusPaths.trackerVolumes, trackerPaths.volumes);
  assert.equal(statusPaths.trackerStatus, trackerPaths.status);
  assert.equal(statusPaths.hostStatus, hostPaths.status);
  assert.equal(statusPaths.backupStatus, backupRoutes.status);
});
