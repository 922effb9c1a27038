/**
 * Verification of a link RECORDS payload before any of it is journaled: records back to back
 * (src/journal_record.ts), each with a good checksum, naming a volume the connection announced in
 * its HELLO and lying inside it. One bad record refuses the whole frame. Unlike `checkBatch`
 * (one volume per HTTP batch) a frame mixes the host's volumes.
 */
import { checkRange } from "../src/extent.ts";
import { badRequest } from "../src/errors.ts";
import { decodeRecord } from "../src/journal_record.ts";

/** What a verified frame holds: its record count and the volumes it touches. */
export interface FrameSummary {
  records: number;
  volumes: Set<string>;
}

/** Verifies `body`; `sizeOf` gives the size of each volume the connection may write. */
export function checkRecords(
  body: Uint8Array,
  sizeOf: (volume: string) => number | undefined,
): FrameSummary {
  if (body.length === 0) throw badRequest("RECORDS frame is empty: it must hold a record");
  const volumes = new Set<string>();
  let records = 0;
  for (let pos = 0; pos < body.length;) {
    const decoded = decodeRecord(body, pos);
    const where = `Record ${records} (byte ${pos}) of the frame`;
    if (!decoded.ok) throw badRequest(`${where}: ${decoded.reason}`);
    const rec = decoded.record;
    const sizeBytes = sizeOf(rec.volume);
    if (sizeBytes === undefined) {
      throw badRequest(`${where} names volume "${rec.volume}", not announced in HELLO`);
    }
    try {
      checkRange(rec.offset, rec.length, sizeBytes, `volume "${rec.volume}"`);
    } catch (err) {
      throw badRequest(`${where}: ${(err as Error).message}`);
    }
    volumes.add(rec.volume);
    records++;
    pos = decoded.next;
  }
  return { records, volumes };
}
