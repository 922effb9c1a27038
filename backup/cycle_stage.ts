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
 * Replay: the journal is reclaimed a segment at a time, so replay applies records that were
 * applied before, from the start of the oldest kept segment. Plain records tolerate that (applied
 * again in order they converge), a stage does not: an old cycle's commit replayed would commit the
 * cycle open now. So every record carries its journal position (segment, byte offset), and per
 * volume two watermarks say what is already reflected: `appliedThrough` (kept with the points:
 * the position of the last commit or spill, after which the secondary was synced) and the stage's
 * last entry (each stage entry is the record preceded by its position). A record at or below
 * either is skipped. Positions only grow while the journal's last segment is kept (Journal.open
 * keeps it); a journal started afresh (no segments) resets the watermarks, logged.
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
import type { JournalPosition } from "./journal_replay.ts";
import type { SecondaryStore } from "./secondary_store.ts";
import { logLine } from "../src/events.ts";

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
  /** The commit marker's place in the journal (absent from points made without positions). */
  journalPos?: JournalPosition;
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
  /**
   * The id of the journal's last segment (null: the journal has none), to detect a journal begun
   * afresh; undefined: not checked (unit tests).
   */
  journalLastSegment?: number | null;
}

/** What `<data>/points/<name>.json` holds. */
interface PointsFile {
  points: CyclePoint[];
  /** The last commit or spill: every record up to it is reflected in the synced secondary. */
  appliedThrough?: JournalPosition;
}

/** Bytes of the position that precedes each record in a stage file (u64 segment, u64 offset). */
const entryHeaderBytes = 16;

/** -1, 0, 1 as `a` is before, at, after `b` in the journal. */
export function comparePositions(a: JournalPosition, b: JournalPosition): number {
  if (a.segment !== b.segment) return a.segment < b.segment ? -1 : 1;
  return a.offset === b.offset ? 0 : a.offset < b.offset ? -1 : 1;
}

function atOrBefore(a: JournalPosition | undefined, b: JournalPosition | undefined): boolean {
  return a !== undefined && b !== undefined && comparePositions(a, b) <= 0;
}

interface Stage {
  /** Position of the last entry (record or begin) staged; undefined without positions. */
  lastPos: JournalPosition | undefined;
  file: Deno.FsFile;
  bytes: number;
  records: number;
  regions: Set<number>;
  unsynced: boolean;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** True when `bytes[from…]` holds the ASCII characters of `text`. */
function sameAscii(bytes: Uint8Array, from: number, text: string): boolean {
  for (let i = 0; i < text.length; i++) if (bytes[from + i] !== text.charCodeAt(i)) return false;
  return true;
}

/** The stages of every volume of one backup, and the points they committed. */
export class CycleStages {
  readonly #stages = new Map<string, Stage>();
  /** Volumes whose open cycle spilled: the rest of it goes straight to the secondary. */
  readonly #spilled = new Set<string>();
  readonly #pointsCache = new Map<string, PointsFile>();
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
    this.#log = opts.log ?? ((m) => logLine("backup", "warn", m));
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
    if (opts.journalLastSegment !== undefined) stages.#checkWatermarks(opts.journalLastSegment);
    return stages;
  }

  /** Positions restart with a journal begun afresh: watermarks past its end are dropped. */
  #checkWatermarks(lastSegment: number | null): void {
    for (const entry of Deno.readDirSync(this.#pointsDir)) {
      if (!entry.isFile || !entry.name.endsWith(".json")) continue;
      const volume = entry.name.slice(0, -".json".length);
      const file = this.#readPoints(volume);
      const at = file.appliedThrough;
      if (at !== undefined && (lastSegment === null || at.segment > lastSegment)) {
        this.#log(`Cycle of "${volume}": the journal was begun afresh; its watermark is reset`);
        this.#writePoints(volume, { points: file.points });
      }
    }
    for (const [volume, s] of this.#stages) {
      if (s.lastPos !== undefined && (lastSegment === null || s.lastPos.segment > lastSegment)) {
        this.#log(`Cycle of "${volume}": the journal was begun afresh; the stage's mark is reset`);
        s.lastPos = undefined;
      }
    }
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

  /**
   * True when the open cycle of `volume` staged a record touching a byte of
   * `offset`+`length` (to whole regions of `regionBytesDefault`): the secondary's file does not
   * show what the backup holds there until the cycle commits.
   */
  stagedWithin(volume: string, offset: number, length: number): boolean {
    const s = this.#stages.get(volume);
    if (s === undefined || s.regions.size === 0 || length <= 0) return false;
    const first = Math.floor(offset / regionBytesDefault);
    const last = Math.floor((offset + length - 1) / regionBytesDefault);
    for (let r = first; r <= last; r++) if (s.regions.has(r)) return true;
    return false;
  }

  /** The committed points of `volume`, oldest first. */
  points(volume: string): CyclePoint[] {
    return this.#readPoints(volume).points;
  }

  #readPoints(volume: string): PointsFile {
    const cached = this.#pointsCache.get(volume);
    if (cached) return cached;
    let file: PointsFile = { points: [] };
    try {
      const parsed = JSON.parse(Deno.readTextFileSync(this.#pointsPath(volume)));
      if (parsed && Array.isArray(parsed.points)) file = parsed as PointsFile;
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) {
        throw new Error(`Points of volume "${volume}" cannot be read: ${(err as Error).message}`);
      }
    }
    this.#pointsCache.set(volume, file);
    return file;
  }

  #writePoints(volume: string, file: PointsFile): void {
    writeJsonAtomicSync(this.#pointsPath(volume), file);
    this.#pointsCache.set(volume, file);
  }

  /**
   * Applies one journaled batch: markers open and commit cycles, records of a volume with an
   * open cycle are staged, all others go to the secondary. Adds the volumes written to `touched`.
   */
  applyBatch(body: Uint8Array, touched: Set<string>, at?: JournalPosition): number {
    let records = 0;
    for (let pos = 0; pos < body.length;) {
      const decoded = decodeRecord(body, pos);
      if (!decoded.ok) throw new Error(`Journaled batch fails verification at byte ${pos}`);
      const where = at === undefined ? undefined : { segment: at.segment, offset: at.offset + pos };
      this.apply(decoded.record, body.subarray(pos, decoded.next), touched, where);
      records++;
      pos = decoded.next;
    }
    return records;
  }

  /**
   * True when `applyBatch(body, …, at)` would do nothing but write each record to the secondary:
   * no cycle marker, no record of a volume with an open stage, none at or below its volume's
   * watermark. The applier writes such batches on its worker thread (backup/apply_thread.ts) and
   * hands every other one to `applyBatch`. Reads only the record headers (the worker verifies the
   * checksums as it writes); a batch that does not parse is not straight.
   */
  straightThrough(body: Uint8Array, at: JournalPosition): boolean {
    const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
    let volume = "";
    let through: JournalPosition | undefined;
    for (let pos = 0; pos < body.length;) {
      if (body.length - pos < recordHeaderBytes) return false;
      const kind = view.getUint8(pos + 5);
      if (kind !== 1 && kind !== 2) return false;
      const nameBytes = view.getUint16(pos + 6, true);
      const nameStart = pos + recordHeaderBytes;
      // Consecutive records are usually of one volume: decode its name once.
      if (nameBytes !== volume.length || !sameAscii(body, nameStart, volume)) {
        volume = decoder.decode(body.subarray(nameStart, nameStart + nameBytes));
        if (this.#stages.has(volume)) return false;
        through = this.#readPoints(volume).appliedThrough;
      }
      // Mostly no watermark: then no position is built per record.
      if (through !== undefined) {
        const where = { segment: at.segment, offset: at.offset + pos };
        if (atOrBefore(where, through)) return false;
      }
      pos = nameStart + nameBytes + (kind === 1 ? view.getUint32(pos + 16, true) : 0);
    }
    return true;
  }

  /**
   * Applies one record (`encoded`: its bytes as journaled, at `at` in the journal; without a
   * position nothing is skipped as already applied).
   */
  apply(rec: JournalRecord, encoded: Uint8Array, touched: Set<string>, at?: JournalPosition): void {
    if (atOrBefore(at, this.#readPoints(rec.volume).appliedThrough)) return;
    const stage = this.#stages.get(rec.volume);
    if (stage !== undefined && atOrBefore(at, stage.lastPos)) return;
    if (rec.kind === "cycle-begin") return this.#begin(rec.volume, encoded, at);
    if (rec.kind === "cycle-commit") return this.#commit(rec.volume, touched, at);
    if (stage === undefined) {
      this.store.applySync(rec);
      touched.add(rec.volume);
      return;
    }
    this.#append(stage, rec, encoded, at);
    if (stage.bytes > this.#bytesMax) this.#spill(rec.volume, touched, at);
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

  #begin(volume: string, encoded: Uint8Array, at: JournalPosition | undefined): void {
    this.#spilled.delete(volume);
    const open = this.#stages.get(volume);
    if (open !== undefined) {
      this.#log(`Cycle of "${volume}": begun again while open; the open stage is continued`);
      this.#writeEntry(open, encoded, at);
      return;
    }
    // Records before the begin went straight to the secondary; make them durable before the
    // stage exists, since replay skips every record at or below the stage's last position.
    this.store.syncOneSync(volume);
    const dir = this.#dir(volume);
    Deno.mkdirSync(dir, { recursive: true });
    const file = Deno.openSync(join(dir, "records"), { read: true, write: true, create: true });
    file.seekSync(0, Deno.SeekMode.End);
    syncDirSync(dir);
    syncDirSync(this.#stageDir);
    const stage: Stage = {
      lastPos: undefined,
      file,
      bytes: 0,
      records: 0,
      regions: new Set(),
      unsynced: false,
    };
    this.#stages.set(volume, stage);
    // The begin is staged too: it carries the stage's position from its first moment.
    this.#writeEntry(stage, encoded, at);
    stage.file.syncDataSync();
    stage.unsynced = false;
  }

  #append(s: Stage, rec: JournalRecord, encoded: Uint8Array, at?: JournalPosition): void {
    this.#writeEntry(s, encoded, at);
    s.bytes += encoded.length;
    s.records++;
    const first = Math.floor(rec.offset / regionBytesDefault);
    const last = Math.floor((rec.offset + rec.length - 1) / regionBytesDefault);
    for (let r = first; r <= last; r++) s.regions.add(r);
  }

  /** Appends one entry: the record's journal position (0, 0 when unknown), then the record. */
  #writeEntry(s: Stage, encoded: Uint8Array, at: JournalPosition | undefined): void {
    const entry = new Uint8Array(entryHeaderBytes + encoded.length);
    const view = new DataView(entry.buffer);
    view.setBigUint64(0, BigInt(at?.segment ?? 0), true);
    view.setBigUint64(8, BigInt(at?.offset ?? 0), true);
    entry.set(encoded, entryHeaderBytes);
    for (let done = 0; done < entry.length;) done += s.file.writeSync(entry.subarray(done));
    if (at !== undefined) s.lastPos = at;
    s.unsynced = true;
  }

  #commit(volume: string, touched: Set<string>, at: JournalPosition | undefined): void {
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
      ...(at === undefined ? {} : { journalPos: at }),
    };
    writeJsonAtomicSync(join(this.#dir(volume), "commit"), point);
    this.opts.crashAt?.("after-commit-marker");
    s.file.close();
    this.#stages.delete(volume);
    this.#finish(volume, point, at, touched);
    this.commits++;
  }

  /** Applies a committed stage, records its point, removes it. Safe to run again after a crash. */
  #finish(
    volume: string,
    point: CyclePoint | undefined,
    appliedThrough: JournalPosition | undefined,
    touched: Set<string>,
  ): void {
    const dir = this.#dir(volume);
    const recordsPath = join(dir, "records");
    if (exists(recordsPath)) {
      this.#applyStage(volume, recordsPath);
      this.store.syncOneSync(volume);
      touched.add(volume);
      this.opts.crashAt?.("after-apply");
      this.#addPoint(volume, point, appliedThrough);
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

  /** Records `point` (if any) and the new watermark, after the secondary was synced. */
  #addPoint(
    volume: string,
    point: CyclePoint | undefined,
    appliedThrough: JournalPosition | undefined,
  ): void {
    const old = this.#readPoints(volume);
    const points = old.points.filter((p) => p.id !== point?.id);
    if (point !== undefined) points.push(point);
    this.#writePoints(volume, {
      points: points.slice(-pointsKeptMax),
      ...(appliedThrough ?? old.appliedThrough
        ? { appliedThrough: appliedThrough ?? old.appliedThrough }
        : {}),
    });
  }

  /** The stage outgrew its bound: apply it now; the rest of the cycle goes straight through. */
  #spill(volume: string, touched: Set<string>, at: JournalPosition | undefined): void {
    const s = this.#stages.get(volume)!;
    this.#log(
      `Cycle of "${volume}": stage of ${s.bytes} bytes exceeds stageBytesMax ${this.#bytesMax}; ` +
        `applied as is, the rest of this cycle is not a point in time`,
    );
    s.file.syncDataSync();
    s.file.close();
    this.#stages.delete(volume);
    writeJsonAtomicSync(join(this.#dir(volume), "commit"), { spilled: true, journalPos: at });
    this.#finish(volume, undefined, at, touched);
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
      this.#finish(volume, point, marker.journalPos, new Set());
      if (point !== undefined) this.commits++;
      return;
    }
    if (!exists(recordsPath)) {
      Deno.removeSync(dir, { recursive: true });
      return;
    }
    const file = Deno.openSync(recordsPath, { read: true, write: true });
    const stage: Stage = {
      lastPos: undefined,
      file,
      bytes: 0,
      records: 0,
      regions: new Set(),
      unsynced: false,
    };
    let end = 0;
    for (const { record, next, at } of readStage(file, recordsPath, true)) {
      const recordBytes = next - end - entryHeaderBytes;
      end = next;
      if (at !== undefined) stage.lastPos = at;
      if (isCycleMarker(record.kind)) continue;
      stage.records++;
      stage.bytes += recordBytes;
      const first = Math.floor(record.offset / regionBytesDefault);
      const last = Math.floor((record.offset + record.length - 1) / regionBytesDefault);
      for (let r = first; r <= last; r++) stage.regions.add(r);
    }
    const size = file.statSync().size;
    if (size > end) {
      this.#log(`Cycle of "${volume}": cut a torn stage tail of ${size - end} bytes`);
      file.truncateSync(end);
      file.syncDataSync();
    }
    file.seekSync(end, Deno.SeekMode.Start);
    this.#stages.set(volume, stage);
    this.#log(
      `Cycle of "${volume}": open with ${stage.records} staged records (${stage.bytes} bytes)`,
    );
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
): Generator<{ record: JournalRecord; next: number; at: JournalPosition | undefined }> {
  const header = new Uint8Array(recordHeaderBytes);
  const posBytes = new Uint8Array(entryHeaderBytes);
  let pos = 0;
  file.seekSync(0, Deno.SeekMode.Start);
  for (;;) {
    const gotPos = readFullSync(file, posBytes);
    if (gotPos === 0) return;
    if (gotPos < entryHeaderBytes) {
      if (tornOk) return;
      throw new Error(`Stage "${path}" is cut short at byte ${pos}`);
    }
    const pv = new DataView(posBytes.buffer);
    const segment = Number(pv.getBigUint64(0, true));
    const at = segment === 0 ? undefined : { segment, offset: Number(pv.getBigUint64(8, true)) };
    const got = readFullSync(file, header);
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
    pos += entryHeaderBytes + decoded.next;
    yield { record: decoded.record, next: pos, at };
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
