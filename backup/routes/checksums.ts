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
 * of the same file sees them; no checkpoint is forced). A region where the volume's open cycle
 * staged a record is answered with `stagedDigest`, which matches nothing: the stage is applied
 * only at the commit, so the file cannot say what the backup holds there.
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
import type { CycleStages } from "../cycle_stage.ts";
import type { Journal } from "../journal.ts";
import { backupRoutes } from "../paths.ts";
import type { SecondaryStore } from "../secondary_store.ts";

/** Bytes read from the secondary at once while hashing a span. */
const checksumReadBytes = 8 * 1024 * 1024;

/**
 * The digest of a region whose secondary bytes do not show what the backup holds: all zeros,
 * which no SHA-256 of real data matches, so the host always ships that region.
 */
export const stagedDigest = new Uint8Array(regionDigestBytes);

/**
 * Indexes (from `offset`, in regions of `regionBytes`) of the regions of `offset`..`end` where
 * the volume's open cycle staged a record: their digests are replaced with `stagedDigest`.
 *
 * A staged record reaches the secondary only when the cycle commits, after every comparison of
 * the walk, so the file's digest says nothing about it. Most staged records are on the primary
 * too and compare different anyway; one that is not — a write the backup took and the primary
 * then refused (ENOSPC, EIO), whose mark the tracker may since have lost — would compare equal,
 * stay unshipped, and land at the commit: the secondary then holds bytes the primary never did
 * (fault sim, received mode, seed 4247). Shipped, the primary's copy is staged after it and wins.
 */
function stagedRegions(
  stages: CycleStages | undefined,
  volume: string,
  offset: number,
  end: number,
  regionBytes: number,
): number[] {
  const staged: number[] = [];
  if (stages === undefined) return staged;
  for (let at = offset, i = 0; at < end; at += regionBytes, i++) {
    if (stages.stagedWithin(volume, at, Math.min(regionBytes, end - at))) staged.push(i);
  }
  return staged;
}

export function checksumsApp(
  deps: {
    journal: Journal;
    applier: Applier;
    store: SecondaryStore;
    metrics: Metrics;
    stages?: CycleStages;
  },
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
      const stepEnd = Math.min(off + step, end);
      const data = store.readSync(name, off, stepEnd - off);
      // In the read's synchronous step: a commit after it applies the stage to bytes already read.
      const staged = stagedRegions(deps.stages, name, off, stepEnd, req.regionBytes);
      const at = ((off - req.offset) / req.regionBytes) * regionDigestBytes;
      digests.set(await hashRegions(data, req.regionBytes), at);
      for (const i of staged) digests.set(stagedDigest, at + i * regionDigestBytes);
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
