/**
 * Per-volume lag at the backup (issue 11): records journaled (acknowledged or queued) and not yet
 * applied and synced to the volume's secondary — bytes, records, and how long the oldest of them
 * has waited. `deno task status` calls a volume in sync only when this is zero.
 *
 * Hooked at the narrowest point: the journal's `append` (a batch admitted) and `release` (batches
 * applied and synced, in journal order), wrapped on the instance by `volumeLagOf`, so neither the
 * journal nor the applier knows about it. Refused batches (full journal, failed group, fence) are
 * taken back when their append rejects. Per volume, records leave in the order they came (the
 * journal's order), so the oldest waiting record is the front of a queue of admitted pieces.
 *
 * Memory: one small piece per admitted batch and volume, bounded like the journal's pending bytes
 * (journalBytesMax) that the pieces describe.
 */
import { forEachRecordHeader } from "../src/journal_record.ts";
import { isoTime } from "../src/iso_time.ts";
import type { Journal } from "./journal.ts";

/** One volume's lag, as `GET /v1/status` shows it in `lag`. */
export interface VolumeLagView {
  volume: string;
  /** Record bytes journaled and not yet applied and synced to the secondary. */
  bytes: number;
  records: number;
  /** When the oldest of them was admitted (epoch ms), null when nothing waits. */
  oldestAt: number | null;
  oldestAtIso: string | null;
  /** Seconds the oldest has waited: how far the secondary is behind the journal. */
  seconds: number;
}

interface Piece {
  at: number;
  records: number;
}

interface Pending {
  bytes: number;
  records: number;
  pieces: Piece[];
  /** Index of the first piece still holding records (pieces before it are spent). */
  head: number;
}

/** Spent pieces kept before the queue is compacted. */
const spentPiecesMax = 1024;

/** Counts what each volume has journaled and not yet applied. */
export class VolumeLag {
  readonly #volumes = new Map<string, Pending>();

  constructor(private readonly now: () => number = Date.now) {}

  /** A batch was admitted to the journal; returns its pieces (for `refused`). */
  admitted(body: Uint8Array): Map<string, { piece: Piece; bytes: number }> {
    const at = this.now();
    const parts = new Map<string, { piece: Piece; bytes: number }>();
    forEachRecordHeader(body, (volume, bytes) => {
      let part = parts.get(volume);
      if (!part) {
        part = { piece: { at, records: 0 }, bytes: 0 };
        parts.set(volume, part);
        this.#pending(volume).pieces.push(part.piece);
      }
      part.piece.records++;
      part.bytes += bytes;
    });
    for (const [volume, part] of parts) {
      const p = this.#pending(volume);
      p.bytes += part.bytes;
      p.records += part.piece.records;
    }
    return parts;
  }

  /** An admitted batch was refused after all: it will never be applied. */
  refused(parts: Map<string, { piece: Piece; bytes: number }>): void {
    for (const [volume, part] of parts) {
      const p = this.#pending(volume);
      const i = p.pieces.indexOf(part.piece, p.head);
      if (i < 0) continue;
      p.bytes -= part.bytes;
      p.records -= part.piece.records;
      p.pieces.splice(i, 1);
    }
  }

  /** A batch was applied and synced (released by the journal). */
  released(body: Uint8Array): void {
    forEachRecordHeader(body, (volume, bytes) => {
      const p = this.#pending(volume);
      p.bytes -= bytes;
      p.records--;
      while (p.head < p.pieces.length && p.pieces[p.head].records === 0) p.head++;
      if (p.head < p.pieces.length) p.pieces[p.head].records--;
      while (p.head < p.pieces.length && p.pieces[p.head].records === 0) p.head++;
      if (p.head > spentPiecesMax && p.head * 2 > p.pieces.length) {
        p.pieces.splice(0, p.head);
        p.head = 0;
      }
    });
  }

  /** The lag of `volume` now (zeros for a volume with nothing waiting). */
  view(volume: string): VolumeLagView {
    const p = this.#volumes.get(volume);
    const oldestAt = p && p.records > 0 ? p.pieces[p.head]?.at ?? null : null;
    return {
      volume,
      bytes: Math.max(0, p?.bytes ?? 0),
      records: Math.max(0, p?.records ?? 0),
      oldestAt,
      oldestAtIso: isoTime(oldestAt),
      seconds: oldestAt === null ? 0 : Math.max(0, (this.now() - oldestAt) / 1000),
    };
  }

  #pending(volume: string): Pending {
    let p = this.#volumes.get(volume);
    if (!p) {
      p = { bytes: 0, records: 0, pieces: [], head: 0 };
      this.#volumes.set(volume, p);
    }
    return p;
  }
}

const lags = new WeakMap<Journal, VolumeLag>();

/**
 * The lag counter of `journal`, installed on first use: its `append` and `release` are wrapped
 * (once per journal, however many apps are built on it) to count each volume's records.
 */
export function volumeLagOf(journal: Journal, now?: () => number): VolumeLag {
  const existing = lags.get(journal);
  if (existing) return existing;
  const lag = new VolumeLag(now);
  lags.set(journal, lag);
  const append = journal.append.bind(journal);
  const release = journal.release.bind(journal);
  journal.append = (body, records, admit) => {
    const done = append(body, records, admit); // a synchronous refusal throws: nothing counted
    const parts = lag.admitted(body);
    done.catch(() => lag.refused(parts));
    return done;
  };
  journal.release = (entries) => {
    for (const entry of entries) lag.released(entry.body);
    return release(entries);
  };
  return lag;
}
