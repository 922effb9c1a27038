/**
 * Verification of a write batch before any of it is journaled: the body is records back to back
 * (src/journal_record.ts), and every one must decode with a good checksum, name the volume of the
 * request path and lie inside the volume. One bad record refuses the whole batch.
 */
import { checkRange } from "../src/extent.ts";
import { badRequest } from "../src/errors.ts";
import { decodeRecord } from "../src/journal_record.ts";

/** What a verified batch holds. */
export interface BatchSummary {
  records: number;
  bytes: number;
}

/** Verifies `body` as a batch for `volume` of `sizeBytes`; throws 400 naming the bad record. */
export function checkBatch(body: Uint8Array, volume: string, sizeBytes: number): BatchSummary {
  if (body.length === 0) {
    throw badRequest(`Batch for volume "${volume}" is empty: it must hold at least one record`);
  }
  let records = 0;
  let pos = 0;
  while (pos < body.length) {
    const decoded = decodeRecord(body, pos);
    const where = `Record ${records} (byte ${pos}) of the batch for volume "${volume}"`;
    if (!decoded.ok) throw badRequest(`${where}: ${decoded.reason}`);
    const rec = decoded.record;
    if (rec.volume !== volume) {
      throw badRequest(`${where} names volume "${rec.volume}"`);
    }
    try {
      checkRange(rec.offset, rec.length, sizeBytes, `volume "${volume}"`);
    } catch (err) {
      throw badRequest(`${where}: ${(err as Error).message}`);
    }
    records++;
    pos = decoded.next;
  }
  return { records, bytes: body.length };
}
