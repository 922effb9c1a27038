/**
 * The applier's worker thread (started by apply_thread.ts): writes journal records to the
 * secondary images with its own file handles, so the synchronous writes never stall the backup's
 * event loop, where the link reads frames and sends acks (the applier's writes blocked it for
 * up to 8 MiB at a time, 17–26 ms, measured in issue 8).
 *
 * Each message carries whole journal batches back to back (one transferred buffer); every record
 * is decoded (its header checked again, not its checksum: the batch was verified when the link or
 * the HTTP route admitted it, and these are the same bytes in memory; a second pass over every
 * payload cost ~4% of the backup's CPU at 4 KiB writes, issue 8), its range checked against the
 * image's size, and written with one positional write (`pwrite`: no separate seek). Nothing here syncs: the applier
 * syncs the secondaries at its checkpoints from the main thread — fdatasync covers every write to
 * the file, whichever descriptor made it, once the write returned.
 */
import { closeSync, fstatSync, openSync, writeSync } from "node:fs";
import { join } from "node:path";
import { checkRange } from "../src/extent.ts";
import { decodeRecord } from "../src/journal_record.ts";
import type { ApplyReply, ApplyRequest } from "./apply_thread.ts";

/** Largest zero buffer written at once for a zero record. */
const zeroChunkBytes = 1024 * 1024;

const files = new Map<string, { fd: number; sizeBytes: number }>();
let zeros = new Uint8Array(0);

function fileOf(dir: string, volume: string): { fd: number; sizeBytes: number } {
  let f = files.get(volume);
  if (!f) {
    // The image exists: registration creates it (durably) before any record for it is journaled.
    const fd = openSync(join(dir, `${volume}.img`), "r+");
    f = { fd, sizeBytes: fstatSync(fd).size };
    files.set(volume, f);
  }
  return f;
}

function writeAt(fd: number, data: Uint8Array, position: number): void {
  for (let done = 0; done < data.length;) {
    done += writeSync(fd, data, done, data.length - done, position + done);
  }
}

/** Writes every record of `bytes` (batches back to back); returns the volumes touched. */
function applyPacked(dir: string, bytes: Uint8Array): string[] {
  const touched = new Set<string>();
  for (let pos = 0; pos < bytes.length;) {
    const decoded = decodeRecord(bytes, pos, false);
    if (!decoded.ok) throw new Error(`Journaled batch fails verification: ${decoded.reason}`);
    const rec = decoded.record;
    const f = fileOf(dir, rec.volume);
    checkRange(rec.offset, rec.length, f.sizeBytes, `volume "${rec.volume}"`);
    if (rec.kind === "write") {
      writeAt(f.fd, rec.data, rec.offset);
    } else {
      if (zeros.length === 0) zeros = new Uint8Array(zeroChunkBytes);
      for (let done = 0; done < rec.length; done += zeroChunkBytes) {
        writeAt(
          f.fd,
          zeros.subarray(0, Math.min(zeroChunkBytes, rec.length - done)),
          rec.offset + done,
        );
      }
    }
    touched.add(rec.volume);
    pos = decoded.next;
  }
  return [...touched];
}

const port = globalThis as unknown as {
  onmessage: ((e: MessageEvent<ApplyRequest>) => void) | null;
  postMessage(message: ApplyReply, transfer?: Transferable[]): void;
  close(): void;
};

port.onmessage = (e) => {
  const msg = e.data;
  if (msg.type === "close") {
    for (const f of files.values()) closeSync(f.fd);
    files.clear();
    port.postMessage({ type: "closed" });
    return;
  }
  try {
    const touched = applyPacked(msg.dir, msg.bytes);
    // The buffer goes back for the next message.
    port.postMessage({ type: "applied", id: msg.id, touched, bytes: msg.bytes }, [
      msg.bytes.buffer,
    ]);
  } catch (err) {
    port.postMessage(
      { type: "failed", id: msg.id, message: (err as Error).message, bytes: msg.bytes },
      [msg.bytes.buffer],
    );
  }
};
