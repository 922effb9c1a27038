/**
 * The stage of a consistent resync (issue 10): between a volume's CYCLE_BEGIN marker and its
 * CYCLE_COMMIT marker (src/journal_record.ts kinds 3 and 4, sent in journal order with the
 * records), every record of the volume — resync copies and application writes alike — is
 * journaled and acknowledged as usual but appended to `<data>/stage/<name>/records` instead of
 * being applied to the secondary. The commit applies the stage in order, so the secondary jumps
 * from one point in time of the primary to the next and is never a mix.
 *
 * Files of one volume's stage, and what each combination means after a crash:
 * - `records` alone: a cycle is open. It is kept and continued by the next CYCLE_BEGIN: the
 *   writes acknowledged into it are not marked at the tracker, so dropping them would lose them.
 *   A torn tail (records are checksummed, the file is only appended) is cut off at open; what it
 *   held was not yet released from the journal, so replay appends it again (a repeated suffix of
 *   the order, which applying in order makes harmless).
 * - `records` + `commit`: the commit is durable; the apply resumes at open.
 * - `commit` alone: the apply finished and `records` was removed; only the cleanup is left.
 *
 * Commit, in order: fdatasync `records`; write `commit` atomically (temp, fsync, rename, fsync
 * dir); apply every staged record to the secondary; fdatasync the secondary; add the point to
 * `<data>/points/<name>.json`; unlink `records`, fsync the dir; unlink `commit`. All of it runs
 * before the applier takes the next record, so no later record of the volume reaches the
 * secondary (or is released from the journal) while a committed stage could still be re-applied.
 *
 * Bounds: a stage holds at most `stageBytesMax` record bytes (a whole-volume resync plus the
 * writes meanwhile). Past it the cycle spills: the stage is applied as it is, and the rest of the
 * cycle goes straight to the secondary as before issue 10 (logged, counted in status); the
 * commit then records no point. The last `pointsKeptMax` points are kept per volume.
 *
 * Everything here is synchronous: journal replay applies records synchronously, and the applier
 * must not take another batch while a commit is half done. A commit's apply therefore holds the
 * event loop for as long as writing the stage takes (about a second per GB).
 */
import { join } from "node:path";
import { regionBytesDefault } from "../src/extent.ts";
import { decodeRecord, isCycleMarker, type JournalRecord } from "../src/journal_record.ts";
import { recordHeaderBytes } from "../src/limits.ts";
import type { SecondaryStore } from "./secondary_store.ts";

/** Default bound on one volume's stage (record bytes). */
export const stageBytesMaxDefault = 256 * 1024 * 1024 * 1024;
/** Committed points in time kept per volume (the oldest are dropped). */
export const pointsKeptMax = 32;

/** One committed point in time of a volume's secondary. */
export interface CyclePoint {
  id: string;
  /** When the commit became durable, ms since the epoch. */
  committedAt: number;
  /** Record bytes the cycle brought (copies and writes). */
  bytes: number;
  records: number;
  /** Distinct regions (of `regionBytesDefault`) the cycle touched. */
  regions: number;
}

/** An open cycle of one volume, as status shows it. */
export interface OpenCycle {
  volume: string;
  stagedBytes: number;
  stagedRecords: number;
  regions: number;
}

/** Named crash points a test can throw at (stage unit tests). */
export type StageCrashPoint =
  | "after-commit-marker"
  | "mid-apply"
  | "after-apply"
  | "after-records-removed";

export interface CycleStageOptions {
  stageBytesMax?: number;
  log?: (message: string) => void;
  /** Test-only: throws at the named point of a commit, as a crash there would stop it. */
  crashAt?: (point: StageCrashPoint) => void;
  now?: () => number;
}

interface Stage {
  file: Deno.FsFile;
  bytes: number;
  records: number;
  regions: Set<number>;
  unsynced: boolean;
}

const encoder = new TextEncoder();

/** The stages of every volume of one backup, and the points they committed. */
export class CycleStages {
  readonly #stages = new Map<string, Stage>();
  /** Volumes whose open cycle spilled: the rest of it goes straight to the secondary. */
  readonly #spilled = new Set<string>();
  readonly #stageDir: string;
  readonly #pointsDir: string;
  readonly #bytesMax: number;
  readonly #log: (message: string) => void;
  /** Cycles that spilled since start (status). */
  spills = 0;
  /** Cycles committed since start (status, metrics). */
  commits = 0;

  private constructor(
    dataDir: string,
    private readonly store: SecondaryStore,
    private readonly opts: CycleStageOptions,
  ) {
    this.#stageDir = join(dataDir, "stage");
    this.#pointsDir = join(dataDir, "points");
    this.#bytesMax = opts.stageBytesMax ?? stageBytesMaxDefault;
    this.#log = opts.log ?? console.warn;
    if (!Number.isSafeInteger(this.#bytesMax) || this.#bytesMax < 1) {
      throw new RangeError(`stageBytesMax ${this.#bytesMax} must be a whole number of bytes >= 1`);
    }
  }

  /**
   * Opens the stages under `dataDir`: finishes every committed one (before journal replay, which
   * may hold later records of the volume), reopens every open one.
   */
  static openSync(
    dataDir: string,
    store: SecondaryStore,
    opts: CycleStageOptions = {},
  ): CycleStages {
    const stages = new CycleStages(dataDir, store, opts);
    Deno.mkdirSync(stages.#stageDir, { recursive: true });
    Deno.mkdirSync(stages.#pointsDir, { recursive: true });
    for (const entry of Deno.readDirSync(stages.#stageDir)) {
      if (entry.isDirectory) stages.#recover(entry.name);
    }
    return stages;
  }

  /** The open cycles (status). */
  openCycles(): OpenCycle[] {
    return [...this.#stages].map(([volume, s]) => ({
      volume,
      stagedBytes: s.bytes,
      stagedRecords: s.records,
      regions: s.regions.size,
    }));
  }

  /** The committed points of `volume`, oldest first. */
  points(volume: string): CyclePoint[] {
    try {
      const parsed = JSON.parse(Deno.readTextFileSync(this.#pointsPath(volume)));
      return Array.isArray(parsed) ? parsed as CyclePoint[] : [];
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return [];
      throw new Error(`Points of volume "${volume}" cannot be read: ${(err as Error).message}`);
    }
  }

  /**
   * Applies one journaled batch: markers open and commit cycles, records of a volume with an
   * open cycle are staged, all others go to the secondary. Adds the volumes written to `touched`.
   */
  applyBatch(body: Uint8Array, touched: Set<string>): number {
    let records = 0;
    for (let pos = 0; pos < body.length;) {
      const decoded = decodeRecord(body, pos);
      if (!decoded.ok) throw new Error(`Journaled batch fails verification at byte ${pos}`);
      this.apply(decoded.record, body.subarray(pos, decoded.next), touched);
      records++;
      pos = decoded.next;
    }
    return records;
  }

  /** Applies one record (`encoded`: its bytes as journaled). */
  apply(rec: JournalRecord, encoded: Uint8Array, touched: Set<string>): void {
    if (rec.kind === "cycle-begin") return this.#begin(rec.volume);
    if (rec.kind === "cycle-commit") return this.#commit(rec.volume, touched);
    const stage = this.#stages.get(rec.volume);
    if (stage === undefined) {
      this.store.applySync(rec);
      touched.add(rec.volume);
      return;
    }
    this.#append(rec.volume, stage, rec, encoded);
    if (stage.bytes > this.#bytesMax) this.#spill(rec.volume, touched);
  }

  /** Makes every stage appended to since the last call durable (the applier's checkpoint). */
  syncSync(): void {
    for (const s of this.#stages.values()) {
      if (!s.unsynced) continue;
      s.file.syncDataSync();
      s.unsynced = false;
    }
  }

  /** Closes the stage files (their contents stay for the next open). */
  close(): void {
    for (const s of this.#stages.values()) s.file.close();
    this.#stages.clear();
  }

  #dir(volume: string): string {
    return join(this.#stageDir, volume);
  }
  #pointsPath(volume: string): string {
    return join(this.#pointsDir, `${volume}.json`);
  }

  #begin(volume: string): void {
    this.#spilled.delete(volume);
    if (this.#stages.has(volume)) {
      this.#log(`Cycle of "${volume}": begun again while open; the open stage is continued`);
      return;
    }
    const dir = this.#dir(volume);
    Deno.mkdirSync(dir, { recursive: true });
    const file = Deno.openSync(join(dir, "records"), { read: true, write: true, create: true });
    file.seekSync(0, Deno.SeekMode.End);
    syncDirSync(dir);
    syncDirSync(this.#stageDir);
    this.#stages.set(volume, { file, bytes: 0, records: 0, regions: new Set(), unsynced: false });
  }

  #append(volume: string, s: Stage, rec: JournalRecord, encoded: Uint8Array): void {
    for (let done = 0; done < encoded.length;) done += s.file.writeSync(encoded.subarray(done));
    s.bytes += encoded.length;
    s.records++;
    s.unsynced = true;
    const first = Math.floor(rec.offset / regionBytesDefault);
    const last = Math.floor((rec.offset + rec.length - 1) / regionBytesDefault);
    for (let r = first; r <= last; r++) s.regions.add(r);
    void volume;
  }

  #commit(volume: string, touched: Set<string>): void {
    const s = this.#stages.get(volume);
    if (s === undefined) {
      if (this.#spilled.delete(volume)) {
        this.#log(`Cycle of "${volume}" committed after it spilled: no point in time recorded`);
      }
      return; // A commit replayed after its stage was applied, or of a cycle never begun.
    }
    s.file.syncDataSync();
    const point: CyclePoint = {
      id: crypto.randomUUID(),
      committedAt: (this.opts.now ?? Date.now)(),
      bytes: s.bytes,
      records: s.records,
      regions: s.regions.size,
    };
    writeJsonAtomicSync(join(this.#dir(volume), "commit"), point);
    this.opts.crashAt?.("after-commit-marker");
    s.file.close();
    this.#stages.delete(volume);
    this.#finish(volume, point, touched);
    this.commits++;
  }

  /** Applies a committed stage, records its point, removes it. Safe to run again after a crash. */
  #finish(volume: string, point: CyclePoint | undefined, touched: Set<string>): void {
    const dir = this.#dir(volume);
    const recordsPath = join(dir, "records");
    if (exists(recordsPath)) {
      this.#applyStage(volume, recordsPath);
      this.store.syncOneSync(volume);
      touched.add(volume);
      this.opts.crashAt?.("after-apply");
      if (point !== undefined) this.#addPoint(volume, point);
      Deno.removeSync(recordsPath);
      syncDirSync(dir);
      this.opts.crashAt?.("after-records-removed");
    }
    Deno.removeSync(dir, { recursive: true });
    syncDirSync(this.#stageDir);
  }

  /** Reads the stage file record by record and applies each to the secondary. */
  #applyStage(volume: string, path: string): void {
    const file = Deno.openSync(path, { read: true });
    try {
      let applied = 0;
      for (const rec of readStage(file, path)) {
        if (isCycleMarker(rec.record.kind)) continue;
        this.store.applySync(rec.record);
        if (++applied === 2) this.opts.crashAt?.("mid-apply");
      }
    } finally {
      file.close();
    }
    void volume;
  }

  #addPoint(volume: string, point: CyclePoint): void {
    const points = this.points(volume).filter((p) => p.id !== point.id);
    points.push(point);
    writeJsonAtomicSync(this.#pointsPath(volume), points.slice(-pointsKeptMax));
  }

  /** The stage outgrew its bound: apply it now; the rest of the cycle goes straight through. */
  #spill(volume: string, touched: Set<string>): void {
    const s = this.#stages.get(volume)!;
    this.#log(
      `Cycle of "${volume}": stage of ${s.bytes} bytes exceeds stageBytesMax ${this.#bytesMax}; ` +
        `applied as is, the rest of this cycle is not a point in time`,
    );
    s.file.syncDataSync();
    s.file.close();
    this.#stages.delete(volume);
    writeJsonAtomicSync(join(this.#dir(volume), "commit"), { spilled: true });
    this.#finish(volume, undefined, touched);
    this.#spilled.add(volume);
    this.spills++;
  }

  #recover(volume: string): void {
    const dir = this.#dir(volume);
    const commitPath = join(dir, "commit");
    const recordsPath = join(dir, "records");
    if (exists(commitPath)) {
      const marker = JSON.parse(Deno.readTextFileSync(commitPath));
      const point = marker.spilled ? undefined : marker as CyclePoint;
      this.#log(`Cycle of "${volume}": resuming the apply of a committed stage`);
      this.#finish(volume, point, new Set());
      if (point !== undefined) this.commits++;
      return;
    }
    if (!exists(recordsPath)) {
      Deno.removeSync(dir, { recursive: true });
      return;
    }
    const file = Deno.openSync(recordsPath, { read: true, write: true });
    const stage: Stage = { file, bytes: 0, records: 0, regions: new Set(), unsynced: false };
    let end = 0;
    for (const { record, next } of readStage(file, recordsPath, true)) {
      stage.records++;
      const first = Math.floor(record.offset / regionBytesDefault);
      const last = Math.floor((record.offset + record.length - 1) / regionBytesDefault);
      for (let r = first; r <= last; r++) stage.regions.add(r);
      end = next;
    }
    const size = file.statSync().size;
    if (size > end) {
      this.#log(`Cycle of "${volume}": cut a torn stage tail of ${size - end} bytes`);
      file.truncateSync(end);
      file.syncDataSync();
    }
    stage.bytes = end;
    file.seekSync(end, Deno.SeekMode.Start);
    this.#stages.set(volume, stage);
    this.#log(`Cycle of "${volume}": open with ${stage.records} staged records (${end} bytes)`);
  }
}

/**
 * The records of a stage file in order. A record that does not decode ends the stage: with
 * `tornOk` it is a torn tail (the caller cuts it), otherwise it is an error naming the file.
 */
function* readStage(
  file: Deno.FsFile,
  path: string,
  tornOk = false,
): Generator<{ record: JournalRecord; next: number }> {
  const header = new Uint8Array(recordHeaderBytes);
  let pos = 0;
  file.seekSync(0, Deno.SeekMode.Start);
  for (;;) {
    const got = readFullSync(file, header);
    if (got === 0) return;
    const view = new DataView(header.buffer);
    const kind = view.getUint8(5);
    const total = recordHeaderBytes + view.getUint16(6, true) +
      (kind === 1 ? view.getUint32(16, true) : 0);
    const buf = new Uint8Array(Math.max(total, recordHeaderBytes));
    buf.set(header.subarray(0, got));
    const rest = got < recordHeaderBytes ? 0 : readFullSync(file, buf.subarray(recordHeaderBytes));
    const decoded = decodeRecord(buf.subarray(0, got + rest), 0);
    if (!decoded.ok) {
      if (tornOk) return;
      throw new Error(`Stage "${path}" is corrupt at byte ${pos}: ${decoded.reason}`);
    }
    pos += decoded.next;
    yield { record: decoded.record, next: pos };
  }
}

function readFullSync(file: Deno.FsFile, buf: Uint8Array): number {
  let done = 0;
  while (done < buf.length) {
    const n = file.readSync(buf.subarray(done));
    if (n === null || n === 0) break;
    done += n;
  }
  return done;
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

function syncDirSync(dir: string): void {
  const f = Deno.openSync(dir, { read: true });
  try {
    f.syncSync();
  } finally {
    f.close();
  }
}

/** Writes `value` as JSON to `path` so a crash leaves the old file or the new one. */
function writeJsonAtomicSync(path: string, value: unknown): void {
  const tmp = `${path}.tmp`;
  const file = Deno.openSync(tmp, { write: true, create: true, truncate: true });
  try {
    const bytes = encoder.encode(JSON.stringify(value) + "\n");
    for (let done = 0; done < bytes.length;) done += file.writeSync(bytes.subarray(done));
    file.syncSync();
  } finally {
    file.close();
  }
  Deno.renameSync(tmp, path);
  syncDirSync(join(path, ".."));
}
