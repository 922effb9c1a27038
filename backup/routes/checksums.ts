/**
 * `POST /v1/volumes/{name}/checksums`: SHA-256 of each region of a span of a secondary, for
 * checksum resync (src/region_checksums.ts has the wire form).
 *
 * The digests must describe everything the backup has taken for that span, not only what the
 * applier happened to reach: a region whose record is still in the journal would compare wrong
 * and be shipped again (harmless) — or, worse, an old record applied after the comparison could
 * undo a repair. So before reading, the route waits until every batch appended so far is durable
 * (in `received` mode the host counts a write delivered while it may still be queued here) and
 * until the applier has written all of them to the secondary files (written, not synced: a reader
 * of the same file sees them; no checkpoint is forced).
 */
import {
  apiRoute,
  errorResponses,
  jsonBody,
  jsonResponse,
  newApiApp,
  openApiPath,
} from "../../src/api_route.ts";
import { badRequest, notFound, ServiceError } from "../../src/errors.ts";
import type { Metrics } from "../../src/metrics.ts";
import {
  checkChecksumSpan,
  checksumAlgorithm,
  checksumRequest,
  type ChecksumResponse,
  checksumResponse,
  encodeDigests,
  hashRegions,
  regionDigestBytes,
} from "../../src/region_checksums.ts";
import { volumeParams } from "../../src/schemas.ts";
import type { Applier } from "../applier.ts";
import type { Journal } from "../journal.ts";
import { backupRoutes } from "../paths.ts";
import type { SecondaryStore } from "../secondary_store.ts";

/** Bytes read from the secondary at once while hashing a span. */
const checksumReadBytes = 8 * 1024 * 1024;

export function checksumsApp(
  deps: { journal: Journal; applier: Applier; store: SecondaryStore; metrics: Metrics },
) {
  const { journal, applier, store, metrics } = deps;
  const app = newApiApp();
  apiRoute(app, {
    method: "post",
    path: openApiPath(backupRoutes.checksums),
    summary: "SHA-256 of each region of a span of the secondary, after applying every record " +
      "taken so far (checksum resync)",
    tags: ["volumes"],
    request: { params: volumeParams, body: jsonBody(checksumRequest) },
    responses: {
      200: jsonResponse(checksumResponse, "The regions' digests, in order"),
      ...errorResponses({
        400: "Region size not a power of two, span not region-aligned, outside the volume, " +
          "or too many regions",
        404: "Unknown volume",
        503: "The applier is failing or stopping",
      }),
    },
  }, async (c) => {
    const { name } = c.req.valid("param");
    const req = c.req.valid("json");
    const sizeBytes = store.sizeOf(name);
    if (sizeBytes === undefined) throw notFound(`Volume "${name}" is not registered`);
    let regions: number;
    try {
      regions = checkChecksumSpan(req, sizeBytes).count;
    } catch (err) {
      throw badRequest(`Checksums of "${name}": ${(err as Error).message}`);
    }
    await journal.drained();
    if (applier.failure) {
      throw new ServiceError(503, `The applier is failing: ${applier.failure.message}`);
    }
    try {
      await applier.waitWritten(journal.recordsAcknowledged);
    } catch (err) {
      throw new ServiceError(503, `Checksums interrupted: ${(err as Error).message}`);
    }
    const digests = new Uint8Array(regions * regionDigestBytes);
    // Whole regions per read, so each read hashes on its own.
    const step = Math.max(1, Math.floor(checksumReadBytes / req.regionBytes)) * req.regionBytes;
    const end = req.offset + req.length;
    for (let off = req.offset; off < end; off += step) {
      const data = store.readSync(name, off, Math.min(step, end - off));
      const at = ((off - req.offset) / req.regionBytes) * regionDigestBytes;
      digests.set(await hashRegions(data, req.regionBytes), at);
    }
    metrics.count(
      "trackmirror_backup_checksum_regions_total",
      "Secondary regions hashed for checksum resync",
      regions,
    );
    return c.json<ChecksumResponse, 200>({
      volume: name,
      offset: req.offset,
      length: req.length,
      regionBytes: req.regionBytes,
      algorithm: checksumAlgorithm,
      digests: encodeDigests(digests),
    }, 200);
  });
  return app;
}
