/**
 * The backup's journal: verified batches appended to segment files, made durable by group commit,
 * handed to the applier in order, and reclaimed once applied.
 *
 * Group commit: `append` only queues a batch. One writer loop writes everything queued into the
 * active segment, calls fdatasync once for the whole group, and only then resolves the group's
 * promises, so N concurrent batches cost one fsync, not N. A group never spans two segments: when
 * the next batch does not fit, the group is committed first and the segment rolled after.
 *
 * The group's bytes are written with synchronous `writeSync` (0.03 ms a group against 0.31 ms for
 * awaited async writes, measured), then one fdatasync covers everything queued since the last.
 *
 * Segments are preallocated: a new segment is filled with zeros to `journalSegmentBytes` and
 * synced before it is used, so the fdatasync of a group changes no metadata (no new blocks, same
 * size) and costs a fraction of one on an appended file (1 MiB durable writes: 0.45 → 3.1 GB/s in
 * the prototype). The next segment is prepared in the background as `next.spare` and renamed
 * into place at the roll; replay takes a run of zeros to the end of a segment as its end. A clean
 * close trims the unwritten tail of the active segment.
 *
 * Capacity: pending bytes are appended (or admitted) but not yet applied and synced to the
 * secondaries. A batch is refused (503) when it would take them past `journalBytesMax`, unless
 * nothing is pending (so a batch larger than the bound still gets through an idle journal).
 * Pending bytes are also what the journal keeps in memory for the applier, so memory is bounded
 * by max(journalBytesMax, batchBytesMax), plus the released link payload buffers kept for reuse
 * (`payloads`, at most min(128 MiB, journalBytesMax / 2)). Disk is reclaimed a whole segment at a time, so the
 * files hold at most pending bytes plus one segment (`journalSegmentBytes`) already applied.
 * Room is signalled, not polled: `onRoom` listeners hear every shrink of pending bytes, and a
 * sender held back by room says so (`wantRoom`) so the applier checkpoints at once.
 *
 * Degraded (`degradedReason`): the journal answers but cannot take writes, and says why, so the
 * backup's status and its link can tell hosts to stop sending instead of failing every write:
 * - failed for good: an fdatasync failed (nothing more from that file can be trusted) or a failed
 *   group could not be cut off; until the backup is restarted and replay decides what survived;
 * - a write failed (ENOSPC / EIO writing a group, or creating the next segment): nothing of the
 *   group was acknowledged; the condition clears with the next group that commits, or when a
 *   self-test (the fault file, and zeros rewritten over the preallocated tail, which hold zeros
 *   already) passes, at most once per `journalSelfTestMs`;
 * - full: pending bytes reached `journalFullFraction` of `journalBytesMax`, or a batch was refused
 *   for room and nothing has been released since.
 */
import assert from "node:assert/strict";
import { unavailable } from "../src/errors.ts";
import type { Histogram, Metrics } from "../src/metrics.ts";
import type { ReplayResult } from "./journal_replay.ts";
import type { FaultFile } from "../src/fault_file.ts";
import { segmentPath, syncDir } from "./segment_files.ts";
import { join } from "node:path";
import { SegmentLedger } from "./segment_ledger.ts";
import { PayloadPool } from "./payload_pool.ts";
import { emit, logLine } from "../src/events.ts";

/** Default size at which the active segment is closed and a new one begun. */
export const journalSegmentBytesDefault = 64 * 1024 * 1024;

/** Pending bytes, as a fraction of journalBytesMax, from which the journal reports itself full. */
export const journalFullFraction = 7 / 8;
/** Least time between two self-tests of a journal whose last write failed. */
export const journalSelfTestMs = 100;
/**
 * A sync slower than this turns inline syncs off for `inlineSyncPauseMs`, so a stalling disk
 * blocks the event loop (status routes, link timers) for one sync, not for every group. Not
 * lower: while the applier's checkpoint writes back a second of random secondary writes, a few
 * journal syncs take 25–50 ms, and at 20 ms the first checkpoint of a durable run at depth 32
 * turned inline syncs off for nearly the whole run (1.4k of 12k syncs inline; 15–16k IOPS against
 * 17–19k with every sync inline, three runs each).
 */
export const inlineSyncSlowMs = 100;
/** How long inline syncs stay off after a slow sync. */
export const inlineSyncPauseMs = 10_000;
/** Zeros the self-test rewrites over the preallocated tail of the active segment. */
const selfTestBytes = 4096;
/** Records per group commit: 1 (a lone write) up to thousands (a resync's coalesced frames). */
const syncRecordsBuckets = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096];

/**
 * Most released payload bytes kept for reuse (`payloads`), and at most half the journal: room for
 * what one checkpoint releases (the applier's step, up to 64 MiB or a quarter of the journal, in
 * buffers up to 1/8 larger than their payloads) on top of what the pool still holds when it
 * comes. At 64 MiB (a quarter of the journal) the pool overflowed at every checkpoint of a
 * durable run at 4 KiB depth 32 (dropping ~1.4k buffers a second to the GC, measured), and the
 * next second's frames allocated fresh ones.
 */
const payloadRetainBytesMax = 128 * 1024 * 1024;

/** Zeros written at once while preallocating a segment. */
const preallocChunkBytes = 1024 * 1024;
/** The file a segment is prepared in before it is renamed into place (not a segment name). */
const spareName = "next.spare";

/** Writes `bytes` zeros at the file's position. */
async function writeZeros(file: Deno.FsFile, bytes: number): Promise<void> {
  const zeros = new Uint8Array(Math.min(preallocChunkBytes, bytes));
  for (let done = 0; done < bytes;) {
    const n = Math.min(zeros.length, bytes - done);
    let w = 0;
    while (w < n) w += await file.write(zeros.subarray(w, n));
    done += n;
  }
}

/** Creates `path` (which must not exist) filled with `bytes` zeros, synced. */
async function createZeroed(path: string, bytes: number): Promise<Deno.FsFile> {
  const file = await Deno.open(path, { read: true, write: true, createNew: true });
  try {
    await writeZeros(file, bytes);
    await file.sync();
    await file.seek(0, Deno.SeekMode.Start);
    return file;
  } catch (err) {
    file.close();
    throw err;
  }
}

/** Where the journal lives and its bounds. */
export interface JournalOptions {
  /** The journal directory (`<data>/journal`). */
  dir: string;
  /** Most pending bytes before appends are refused with 503. */
  journalBytesMax: number;
  /** Size at which a segment is rolled. */
  journalSegmentBytes?: number;
  metrics?: Metrics;
  /**
   * How a group commit makes its bytes durable (default `file.syncData()`): a seam for tests
   * that hold or fail the sync, e.g. to show what `received` acknowledgement exposes.
   */
  syncData?: (file: Deno.FsFile) => Promise<void>;
  /**
   * True when a group may be synced on the calling thread (`syncDataSync`), blocking the event
   * loop for the fdatasync: when nothing needs the loop meanwhile (no `received` link, whose
   * receipt acks would wait). Default: never. See `syncInlineAllowed`.
   */
  syncInline?: () => boolean;
  /** Test-only disk faults (src/fault_file.ts); absent: none are checked. */
  faults?: FaultFile;
  /** Time in ms for the self-test's rate limit (default performance.now). */
  now?: () => number;
}

/** One acknowledged batch: its bytes exactly as appended, waiting to be applied. */
export interface JournalEntry {
  readonly segment: number;
  /** Byte offset of the batch in its segment: with `segment`, its place in the journal's order. */
  readonly offset: number;
  /**
   * The batch's bytes. A large batch that owns its whole buffer is lent to the apply worker
   * (transferred there and back, backup/apply_thread.ts): only the applier touches it then.
   */
  body: Uint8Array;
  readonly records: number;
}

interface Queued {
  body: Uint8Array;
  records: number;
  /** Called when the batch takes its place in the journal's order; throwing refuses it. */
  admit?: () => void;
  resolve: () => void;
  reject: (err: Error) => void;
}

/** The segmented, group-committed journal of one backup service. */
export class Journal {
  readonly journalBytesMax: number;
  readonly journalSegmentBytes: number;
  /**
   * Buffers for batches to append (the link's frame payloads): a batch taken from here goes back
   * when `release` frees it, so a steady stream of frames allocates nothing.
   */
  readonly payloads: PayloadPool;
  #pendingBytes = 0;
  #recordsAcknowledged = 0;
  #recordsReleased = 0;
  #queue: Queued[] = [];
  #durable: JournalEntry[] = [];
  #durableBytes = 0;
  #durableWaiters: { bytes: number; wake: () => void }[] = [];
  /** Settles once the batch appended last is durable or refused (groups commit in order). */
  #lastQueued: Promise<void> = Promise.resolve();
  /** True while the writer loop runs; cleared by the loop itself as it exits. */
  #writing = false;
  #writer: Promise<void> = Promise.resolve();
  #ledger: SegmentLedger;
  #closed = false;
  #failure: Error | undefined;
  /** The last group's (or roll's) write failure; cleared by a commit or a passing self-test. */
  #writeFailure: Error | undefined;
  #selfTestAt = -Infinity;
  /** Pending bytes when a batch was last refused for room; cleared once any is released. */
  #refusedAtPending: number | undefined;
  /** The next segment, being zero-filled in the background; undefined when none is started. */
  #spare: Promise<Deno.FsFile | undefined> | undefined;
  /** Called whenever pending bytes shrink (see `onRoom`). */
  #roomListeners = new Set<() => void>();
  /** A sender is held back by the journal's room (see `wantRoom`); cleared by a release. */
  #roomWanted = false;

  private constructor(
    private readonly opts: JournalOptions,
    private activeId: number,
    private activeFile: Deno.FsFile,
    private activeBytes: number,
  ) {
    this.journalBytesMax = opts.journalBytesMax;
    this.journalSegmentBytes = opts.journalSegmentBytes ?? journalSegmentBytesDefault;
    this.payloads = new PayloadPool(
      Math.min(payloadRetainBytesMax, Math.floor(opts.journalBytesMax / 2)),
    );
    this.#ledger = new SegmentLedger(opts.dir, opts.metrics);
    this.#ledger.begin(activeId);
    this.#syncSeconds = opts.metrics?.histogram(
      "trackmirror_backup_journal_sync_seconds",
      "Time of one group commit's fdatasync of the journal (every batch of the group waits on it)",
    );
    this.#syncRecords = opts.metrics?.histogram(
      "trackmirror_backup_journal_sync_records",
      "Records made durable by one group commit's fdatasync",
      [],
      syncRecordsBuckets,
    );
  }

  readonly #syncSeconds?: Histogram;
  /** Inline syncs are off until this time (ms, `now`): a recent sync was slow. */
  #inlineSyncOffUntil = 0;
  /** Groups synced inline, for tests and metrics. */
  inlineSyncs = 0;
  readonly #syncRecords?: Histogram;

  /**
   * Opens the journal for appending after `replayJournal` applied every record in it and the
   * secondaries were synced: every segment but the last is then reclaimable and is removed, and
   * appending continues at the end of the last one (its torn tail already cut off).
   */
  static async open(opts: JournalOptions, replayed: ReplayResult): Promise<Journal> {
    const lastId = replayed.segmentIds.at(-1);
    for (const id of replayed.segmentIds.slice(0, -1)) await Deno.remove(segmentPath(opts.dir, id));
    await Deno.remove(join(opts.dir, spareName)).catch(() => {});
    let file: Deno.FsFile;
    const segmentBytes = opts.journalSegmentBytes ?? journalSegmentBytesDefault;
    if (lastId === undefined) {
      file = await createZeroed(segmentPath(opts.dir, 1), segmentBytes);
      await syncDir(opts.dir);
    } else {
      file = await Deno.open(segmentPath(opts.dir, lastId), { write: true });
      // A trimmed (cleanly closed) last segment is preallocated again up to the segment size.
      const { size } = await file.stat();
      if (size < segmentBytes) {
        await file.seek(size, Deno.SeekMode.Start);
        await writeZeros(file, segmentBytes - size);
        await file.sync();
      }
      await file.seek(replayed.lastSegmentBytes, Deno.SeekMode.Start);
    }
    return new Journal(
      opts,
      lastId ?? 1,
      file,
      lastId === undefined ? 0 : replayed.lastSegmentBytes,
    );
  }

  /** Bytes admitted and not yet applied and synced to the secondaries. */
  get pendingBytes(): number {
    return this.#pendingBytes;
  }
  /** Records made durable and acknowledged since the journal was opened. */
  get recordsAcknowledged(): number {
    return this.#recordsAcknowledged;
  }
  /** Records applied and synced to the secondaries since the journal was opened. */
  get recordsReleased(): number {
    return this.#recordsReleased;
  }
  /** True once `close` was called: no more appends, the applier should stop. */
  get closed(): boolean {
    return this.#closed;
  }
  /** The id of the segment being appended to. */
  get activeSegment(): number {
    return this.activeId;
  }

  /**
   * Calls `listener` whenever pending bytes shrink (batches released by the applier, or refused):
   * a link holding back credit grants it then, not at its next poll. Returns the unsubscribe.
   */
  onRoom(listener: () => void): () => void {
    this.#roomListeners.add(listener);
    return () => this.#roomListeners.delete(listener);
  }

  /**
   * A sender is held back by the journal's room: the applier should apply and checkpoint what it
   * holds now instead of at its next size or time bound (a small journal must not wait a
   * checkpoint interval for room). Wakes the applier; cleared by the next release.
   */
  wantRoom(): void {
    if (this.#roomWanted || this.#closed) return;
    this.#roomWanted = true;
    this.#wakeDurable(true);
  }

  /** True while a sender waits for room and nothing was released since it said so. */
  get roomWanted(): boolean {
    return this.#roomWanted;
  }

  #roomReclaimed(): void {
    for (const listener of this.#roomListeners) listener();
  }

  /** Throws 503 unless a batch of `bytes` would be admitted now. */
  checkRoom(bytes: number): void {
    if (this.#closed) throw unavailable("The backup is shutting down");
    if (this.#failure) throw unavailable(`The journal failed: ${this.#failure.message}`);
    if (this.#pendingBytes > 0 && this.#pendingBytes + bytes > this.journalBytesMax) {
      if (this.#refusedAtPending === undefined) {
        emit({
          service: "backup",
          level: "error",
          kind: "journal.full",
          message:
            `journal full: ${this.#pendingBytes} bytes pending of journalBytesMax ${this.journalBytesMax}; writes are refused (503) until the applier catches up`,
          data: { pendingBytes: this.#pendingBytes, journalBytesMax: this.journalBytesMax },
        });
      }
      this.#refusedAtPending = this.#pendingBytes;
      throw unavailable(
        `Journal full: ${this.#pendingBytes} bytes pending + ${bytes} exceeds journalBytesMax ` +
          `${this.journalBytesMax}; retry when the backup has applied its backlog`,
      );
    }
  }

  /**
   * Why the journal cannot take writes now (failed, a write failed, full), or null when it can.
   * A write failure is re-tested here (at most once per `journalSelfTestMs`), so a healed disk is
   * noticed even while no host sends anything.
   */
  degradedReason(): string | null {
    if (this.#failure) return `Journal failed: ${this.#failure.message}`;
    if (this.#writeFailure) this.#selfTest();
    if (this.#writeFailure) return `Journal write failed: ${this.#writeFailure.message}`;
    const full = this.journalBytesMax * journalFullFraction;
    if (this.#pendingBytes >= full || this.#refusedAtPending !== undefined) {
      return `Journal full: ${this.#pendingBytes} bytes pending of journalBytesMax ` +
        `${this.journalBytesMax} (the applier is behind or failing)`;
    }
    return null;
  }

  /**
   * Appends a verified batch of `records` records; resolves once it is durable. Admission is
   * decided synchronously here, so concurrent calls cannot overshoot the bound between them.
   */
  append(body: Uint8Array, records: number, admit?: () => void): Promise<void> {
    assert.ok(body.length > 0 && records > 0, "A journal batch holds at least one record");
    this.checkRoom(body.length);
    this.#pendingBytes += body.length;
    const done = new Promise<void>((resolve, reject) => {
      this.#queue.push({ body, records, admit, resolve, reject });
    });
    this.#lastQueued = done.catch(() => {});
    if (!this.#writing) {
      // Started one microtask later, not inside this call: a caller acknowledging on receipt
      // (the link's `received` mode) answers first, and the group's write and the fdatasync's
      // dispatch to the blocking pool (~35 µs together at depth 1) no longer delay its answer.
      this.#writing = true;
      this.#writer = Promise.resolve().then(() => this.#writeLoop());
    }
    return done;
  }

  /**
   * Resolves once every batch appended so far is durable (or refused): then `recordsAcknowledged`
   * counts each of them. Checksums need it: in `received` mode a batch the host already counts as
   * delivered may still be queued here.
   */
  drained(): Promise<void> {
    return this.#lastQueued;
  }

  /** Takes acknowledged entries, oldest first, up to about `bytesMax` (at least one). */
  takeDurable(bytesMax: number): JournalEntry[] {
    let bytes = 0;
    let n = 0;
    while (
      n < this.#durable.length && (n === 0 || bytes + this.#durable[n].body.length <= bytesMax)
    ) {
      bytes += this.#durable[n].body.length;
      n++;
    }
    this.#durableBytes -= bytes;
    return this.#durable.splice(0, n);
  }

  /** Bytes of acknowledged entries waiting to be taken. */
  get durableBytes(): number {
    return this.#durableBytes;
  }

  /**
   * Resolves when acknowledged entries of at least `bytes` bytes (default: any) wait to be
   * taken, or the journal closed.
   */
  waitDurable(bytes = 1): Promise<void> {
    if (this.#durableBytes >= bytes || this.#closed) return Promise.resolve();
    return new Promise((wake) => this.#durableWaiters.push({ bytes, wake }));
  }

  #wakeDurable(all: boolean): void {
    this.#durableWaiters = this.#durableWaiters.filter((w) => {
      if (!all && w.bytes > this.#durableBytes) return true;
      w.wake();
      return false;
    });
  }

  /**
   * Releases entries the applier applied and synced, in the order they were taken; segments all
   * of whose bytes are released and that are no longer appended to are deleted. Bodies taken from
   * `payloads` go back to it: nothing may read an entry's body after its release.
   */
  release(entries: readonly JournalEntry[]): Promise<void> {
    for (const entry of entries) {
      this.#ledger.released(entry.segment, entry.body.length);
      this.#pendingBytes -= entry.body.length;
      this.#recordsReleased += entry.records;
    }
    assert.ok(this.#pendingBytes >= 0, `Pending bytes ${this.#pendingBytes} went negative`);
    for (const entry of entries) this.payloads.give(entry.body);
    if (entries.length > 0) {
      if (this.#refusedAtPending !== undefined) {
        emit({
          service: "backup",
          kind: "journal.room",
          message: `journal has room again (${this.#pendingBytes} bytes pending)`,
          data: { pendingBytes: this.#pendingBytes },
        });
      }
      this.#refusedAtPending = undefined;
      this.#roomWanted = false;
      this.#roomReclaimed();
    }
    return this.#ledger.reclaim();
  }

  /** Refuses new appends, finishes everything already queued, closes the active segment. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#writer;
    await this.#ledger.reclaim();
    const spare = await this.#spare?.catch(() => undefined);
    spare?.close();
    await Deno.remove(join(this.opts.dir, spareName)).catch(() => {});
    if (!this.#failure) {
      // The zero tail is harmless, but a cleanly closed segment need not keep it.
      try {
        await this.activeFile.truncate(this.activeBytes);
        await this.activeFile.syncData();
      } catch (err) {
        logLine(
          "backup",
          "error",
          `Journal: trimming segment ${this.activeId}: ${(err as Error).message}`,
        );
      }
    }
    this.activeFile.close();
    this.#wakeDurable(true);
  }

  /**
   * Commits groups until the queue is empty. `#writing` is cleared in the same synchronous step
   * that finds the queue empty, so an append can never queue behind a loop that already ended.
   */
  async #writeLoop(): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        if (this.#failure) {
          this.#reject(this.#queue.splice(0), this.#failure);
          break;
        }
        const group = this.#takeGroup();
        if (group.length > 0) {
          await this.#commitGroup(group);
          continue;
        }
        try {
          await this.#roll();
        } catch (err) {
          // Nothing was acknowledged into the new segment: refuse what is queued, retry the roll
          // with the next append (a full disk may have room again by then).
          const cause = new Error(
            `Segment ${this.activeId + 1} could not be created: ${(err as Error).message}`,
          );
          this.#writeFailure = cause;
          logLine("backup", "error", `Journal: ${cause.message}`);
          this.#reject(this.#queue.splice(0), cause);
          break;
        }
      }
    } finally {
      this.#writing = false;
    }
  }

  #reject(batches: Queued[], cause: Error): void {
    for (const q of batches) {
      this.#pendingBytes -= q.body.length;
      q.reject(unavailable(`Journal append failed: ${cause.message}`));
    }
    if (batches.length > 0) this.#roomReclaimed();
  }

  /**
   * The queued batches that fit in the active segment (one at least when it is empty). This is
   * where a batch's place in the journal is decided, so its `admit` check runs here.
   */
  #takeGroup(): Queued[] {
    let bytes = this.activeBytes;
    let n = 0;
    for (const q of this.#queue) {
      if (bytes > 0 && bytes + q.body.length > this.journalSegmentBytes) break;
      bytes += q.body.length;
      n++;
    }
    const group: Queued[] = [];
    for (const q of this.#queue.splice(0, n)) {
      try {
        q.admit?.();
        group.push(q);
      } catch (err) {
        this.#pendingBytes -= q.body.length;
        q.reject(err as Error);
        this.#roomReclaimed();
      }
    }
    return group;
  }

  async #commitGroup(group: Queued[]): Promise<void> {
    const startBytes = this.activeBytes;
    let touched = false;
    try {
      this.opts.faults?.check("journal", `Journal segment ${this.activeId}`);
      touched = true;
      for (const q of group) this.#writeAll(q.body);
    } catch (err) {
      // Never acknowledged: the group is refused whole (an ENOSPC or EIO says why).
      if (touched) {
        await this.#undoGroup(startBytes, err as Error);
      } else {
        logLine(
          "backup",
          "error",
          `Journal segment ${this.activeId}: group refused: ${(err as Error).message}`,
        );
      }
      this.#writeFailure = err as Error;
      this.#reject(group, err as Error);
      return;
    }
    try {
      const end = this.#syncSeconds?.startTimer();
      const startedAt = this.#now();
      if (this.#syncInlineAllowed(startedAt)) {
        this.activeFile.syncDataSync();
        this.inlineSyncs++;
        this.opts.metrics?.count(
          "trackmirror_backup_journal_inline_fsyncs_total",
          "fsync calls by the journal made inline, on the event loop's thread (no received link)",
        );
      } else await (this.opts.syncData?.(this.activeFile) ?? this.activeFile.syncData());
      const tookMs = this.#now() - startedAt;
      if (tookMs > inlineSyncSlowMs) {
        this.#inlineSyncOffUntil = startedAt + tookMs + inlineSyncPauseMs;
      }
      end?.();
      this.opts.metrics?.count(
        "trackmirror_backup_journal_fsyncs_total",
        "fsync calls by the journal",
      );
    } catch (err) {
      // After a failed fsync the kernel may have dropped the dirty pages, and a retry can report
      // success without them (PostgreSQL's "fsyncgate"): trust nothing more from this file. The
      // rejected group is still cut off (best effort) so replay is less likely to apply it.
      await this.#undoGroup(startBytes, err as Error);
      this.#failure = new Error(
        `fdatasync of segment ${this.activeId} failed (${(err as Error).message}); ` +
          `refusing appends until restarted (replay decides what survived)`,
      );
      logLine("backup", "error", `Journal: ${this.#failure.message}`);
      this.#reject(group, err as Error);
      return;
    }
    this.#writeFailure = undefined;
    this.#syncRecords?.observe(group.reduce((n, q) => n + q.records, 0));
    let offset = startBytes;
    for (const q of group) {
      this.#ledger.written(this.activeId, q.body.length);
      this.#durable.push({ segment: this.activeId, offset, body: q.body, records: q.records });
      offset += q.body.length;
      this.#durableBytes += q.body.length;
      this.#recordsAcknowledged += q.records;
      q.resolve();
    }
    this.opts.metrics?.count(
      "trackmirror_backup_journal_groups_total",
      "Group commits (one fsync each)",
    );
    this.#wakeDurable(false);
  }

  /**
   * Whether this group's fdatasync runs inline (`syncDataSync` on this thread) rather than on
   * Deno's blocking pool: inline saves the two thread hand-offs around every group (to the pool
   * and back to the event loop), measured 234 → 138 µs a sync at depth 1. Only when the owner
   * says nothing needs the event loop meanwhile (`syncInline`), never with a test's `syncData`,
   * and not within `inlineSyncPauseMs` of a sync slower than `inlineSyncSlowMs`.
   */
  #syncInlineAllowed(now: number): boolean {
    if (this.opts.syncData || !this.opts.syncInline?.()) return false;
    return now >= this.#inlineSyncOffUntil;
  }

  #now(): number {
    return (this.opts.now ?? (() => performance.now()))();
  }

  /**
   * Clears a write failure when the disk takes writes again: the fault file names no journal
   * fault and zeros can be rewritten over the active segment's preallocated tail (zeros already,
   * so nothing changes). Skipped while a group is being written or when no tail is left.
   */
  #selfTest(): void {
    const now = this.#now();
    if (this.#writing || now - this.#selfTestAt < journalSelfTestMs) return;
    this.#selfTestAt = now;
    const bytes = Math.min(selfTestBytes, this.journalSegmentBytes - this.activeBytes);
    try {
      this.opts.faults?.check("journal", `Journal segment ${this.activeId} self-test`);
      if (bytes > 0 && !this.#closed) {
        this.activeFile.seekSync(this.activeBytes, Deno.SeekMode.Start);
        try {
          let done = 0;
          while (done < bytes) done += this.activeFile.writeSync(new Uint8Array(bytes - done));
        } finally {
          this.activeFile.seekSync(this.activeBytes, Deno.SeekMode.Start);
        }
      }
      this.#writeFailure = undefined;
    } catch (err) {
      this.#writeFailure = err as Error;
    }
  }

  #writeAll(bytes: Uint8Array): void {
    let done = 0;
    while (done < bytes.length) done += this.activeFile.writeSync(bytes.subarray(done));
    this.activeBytes += bytes.length;
  }

  /**
   * A group that failed half-written must not stay in the segment: replay would take it for a
   * torn tail and drop every later, acknowledged record with it. When even that fails, the journal
   * refuses all further appends.
   */
  async #undoGroup(startBytes: number, cause: Error): Promise<void> {
    logLine(
      "backup",
      "error",
      `Journal segment ${this.activeId}: group append failed: ${cause.message}`,
    );
    try {
      await this.activeFile.truncate(startBytes);
      await this.activeFile.seek(startBytes, Deno.SeekMode.Start);
      await this.activeFile.syncData();
      this.activeBytes = startBytes;
    } catch (err) {
      this.#failure = new Error(
        `Segment ${this.activeId} could not be cut back to ${startBytes} bytes after a failed ` +
          `append (${(err as Error).message}); refusing appends`,
      );
    }
  }

  /** Starts zero-filling the next segment in the background, unless already started. */
  #prepareSpare(): void {
    this.#spare ??= createZeroed(join(this.opts.dir, spareName), this.journalSegmentBytes).catch(
      (err) => {
        logLine(
          "backup",
          "error",
          `Journal: preparing the next segment: ${(err as Error).message}`,
        );
        return Deno.remove(join(this.opts.dir, spareName)).then(() => undefined, () => undefined);
      },
    );
  }

  /** The next segment's file: the prepared spare renamed into place, else a new zeroed one. */
  async #nextFile(next: number): Promise<Deno.FsFile> {
    this.#prepareSpare();
    const spare = await this.#spare;
    this.#spare = undefined;
    const path = segmentPath(this.opts.dir, next);
    if (spare) {
      try {
        await Deno.rename(join(this.opts.dir, spareName), path);
        return spare;
      } catch (err) {
        spare.close();
        throw err;
      }
    }
    return await createZeroed(path, this.journalSegmentBytes);
  }

  /** Closes the (already synced) active segment and begins the next one. */
  async #roll(): Promise<void> {
    const next = this.activeId + 1;
    const file = await this.#nextFile(next);
    try {
      await syncDir(this.opts.dir);
    } catch (err) {
      file.close();
      throw err;
    }
    this.opts.metrics?.count(
      "trackmirror_backup_journal_fsyncs_total",
      "fsync calls by the journal",
    );
    this.activeFile.close();
    this.activeFile = file;
    this.#ledger.close(this.activeId);
    this.#ledger.begin(next);
    this.activeId = next;
    this.activeBytes = 0;
    // The old segment may be fully applied already; deleting it need not hold up appends.
    void this.#ledger.reclaim();
    this.#prepareSpare();
  }
}
