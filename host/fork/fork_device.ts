/**
 * The fork layer: the host agent's filter driver (seed 001, fig. 3). Every change to the primary is
 * first made safe elsewhere, then applied:
 *
 *   1. the range was validated at the front-end (NBD / HTTP boundary)
 *   2. take the range lock (orders this write against overlapping writes and resync copies)
 *   3. if the backup is online: make sure the regions hold activity marks at the tracker (a hot
 *      region needs no call), then send the write to the backup; a failure marks it offline
 *   4. if the backup did not acknowledge, make sure the tracker holds a mark for the regions
 *      (a cached mark counts); if that fails too, the write fails and the primary is untouched
 *   5. write the primary, release the lock
 *
 * When the primary refuses the write (ENOSPC, EIO) after the backup acknowledged it, the backup
 * holds bytes the primary does not: before the write fails, its regions are marked dirty at the
 * tracker (under the same range lock), so the next resync copies the primary over the secondary
 * and they converge. The write fails with `DiskWriteError` (HTTP 507 for ENOSPC, 500 for EIO; NBD
 * ENOSPC / EIO). If the tracker cannot take that mark either, the activity record keeps the
 * regions tainted until a dirty mark covers them (activity_record.ts).
 *
 * In cycle mode (issue 10, host/cycle/) step 3 is replaced: nothing goes to the backup; the
 * write locks its whole regions, lets the running cycle ship their frozen content first
 * (copy-before-write), and step 4 marks them at the tracker.
 *
 * This keeps the one invariant: for every byte range, either the backup holds what the primary
 * holds, or the tracker holds a mark covering it.
 */
import { type BlockDevice, PassThroughDevice } from "../../src/block_device.ts";
import { DiskWriteError, ServiceError } from "../../src/errors.ts";
import { diskErrorCode } from "../../src/fault_file.ts";
import { recordPayloadBytesMax } from "../../src/limits.ts";
import { type MirrorRecord, RecordRefusedError } from "./backup_batcher.ts";
import type { RangeLock } from "./range_lock.ts";
import { logLine } from "../../src/events.ts";

/** The parts of the host the fork layer talks to; tests substitute recording fakes. */
export interface ForkPaths {
  volume: string;
  locks: RangeLock;
  backup: {
    readonly isOnline: boolean;
    markOffline(err: unknown): void;
    /**
     * Resolves once everything a lost backup connection may have lost is marked at the tracker
     * (seed 002's unhardened union); a write acknowledged through the tracker waits for it.
     */
    settled?(): Promise<void>;
  };
  batcher: { submit(rec: MirrorRecord): Promise<void> };
  marker: { ensureMarked(offset: number, length: number): Promise<void> };
  /**
   * The volume's lease (lease_guard.ts): once fenced, every write fails before anything is sent
   * or written, and a fencing refusal from the backup or the tracker fences it and fails the
   * write instead of trying the other path. Absent: no fencing (tests, tools).
   */
  lease?: {
    check(what: string): void;
    noteRefusal(err: unknown): boolean;
  };
  /**
   * Cycle mode (issue 10, host/cycle/): no write is sent to the backup. Each write locks its whole
   * regions, lets the running cycle ship their frozen content first (copy-before-write), then is
   * covered by a tracker mark like a write while the backup is away. Absent: journal mode.
   */
  cycles?: { regionBytes: number; beforeWrite(offset: number, length: number): Promise<void> };
  /** Activity marks while the backup is online (activity_record.ts); absent: none are kept. */
  activity?: {
    /** Undefined when the regions hold their marks already (no wait). */
    acquire(offset: number, length: number): Promise<void> | undefined;
    release(offset: number, length: number, safe: boolean): void;
  };
}

/** Which path made a write safe. */
export type ForkOutcome = "backup" | "tracker";

/** Counts of forked writes by outcome. */
export interface ForkCounters {
  viaBackup: number;
  viaTracker: number;
  failed: number;
  /** Writes made safe at the backup or tracker that the primary then refused (ENOSPC, EIO). */
  primaryFailed: number;
}

/** Largest range one zero record covers; longer trims are split (a zero record has no payload). */
const zeroRecordBytesMax = 1024 * 1024 * 1024;

export class ForkDevice extends PassThroughDevice {
  readonly counters: ForkCounters = { viaBackup: 0, viaTracker: 0, failed: 0, primaryFailed: 0 };

  constructor(primary: BlockDevice, private readonly paths: ForkPaths) {
    super(primary);
  }

  /**
   * A write longer than one record carries (recordPayloadBytesMax; an NBD server configured above
   * its 32 MiB default, or a direct caller) is split into record-sized pieces, each forked on its
   * own, like a long zero range: block devices promise no atomicity across such a range.
   */
  override async write(offset: number, data: Uint8Array, opts?: { fua?: boolean }): Promise<void> {
    for (let done = 0; done < data.length || done === 0; done += recordPayloadBytesMax) {
      const o = offset + done;
      const piece = data.subarray(done, done + recordPayloadBytesMax);
      await this.#forked(
        { kind: "write", offset: o, length: piece.length, data: piece },
        () => this.next.write(o, piece, opts),
      );
    }
  }

  override trim(offset: number, length: number, opts?: { fua?: boolean }): Promise<void> {
    return this.#zeroed(offset, length, (o, l) => this.next.trim(o, l, opts));
  }

  override writeZeroes(offset: number, length: number, opts?: { fua?: boolean }): Promise<void> {
    return this.#zeroed(offset, length, (o, l) => this.next.writeZeroes(o, l, opts));
  }

  async #zeroed(
    offset: number,
    length: number,
    apply: (offset: number, length: number) => Promise<void>,
  ): Promise<void> {
    for (let done = 0; done < length; done += zeroRecordBytesMax) {
      const o = offset + done;
      const l = Math.min(zeroRecordBytesMax, length - done);
      await this.#forked({ kind: "zero", offset: o, length: l }, () => apply(o, l));
    }
  }

  /** Steps 2-5 of the write path for one record. */
  async #forked(rec: MirrorRecord, applyPrimary: () => Promise<void>): Promise<ForkOutcome> {
    this.#checkLease(rec);
    const span = this.#lockSpan(rec);
    const release = this.paths.locks.tryAcquire(span.offset, span.length) ??
      await this.paths.locks.acquire(span.offset, span.length);
    const pin = { held: false, safe: false };
    try {
      this.#checkLease(rec); // the lock wait is an await: a refusal may have come meanwhile
      const outcome = await this.#makeSafe(rec, pin);
      // Covered by a dirty mark, the range stays safe even if the primary write fails; covered
      // only by the backup, a failed primary write leaves the backup ahead of the primary.
      pin.safe = outcome === "tracker";
      try {
        await applyPrimary();
      } catch (err) {
        this.counters.primaryFailed++;
        if (outcome === "backup") pin.safe = await this.#markBackupAhead(rec);
        throw primaryFailure(this.paths.volume, rec, err, outcome, pin.safe);
      }
      pin.safe = true;
      return outcome;
    } finally {
      if (pin.held) this.paths.activity?.release(rec.offset, rec.length, pin.safe);
      release();
    }
  }

  /**
   * The backup took a write the primary refused: marks its regions dirty so resync copies the
   * primary over the secondary. True when the mark is held; false leaves the regions tainted.
   */
  async #markBackupAhead(rec: MirrorRecord): Promise<boolean> {
    try {
      await this.paths.marker.ensureMarked(rec.offset, rec.length);
      return true;
    } catch (err) {
      logLine(
        "host",
        "error",
        `volume "${this.paths.volume}" ${rec.offset}+${rec.length}: the backup holds a ` +
          `write the primary refused, and the tracker did not take its mark: ` +
          `${(err as Error).message}; the regions stay tainted until a mark covers them`,
      );
      return false;
    }
  }

  /**
   * Steps 3-4: the backup first (its regions hold activity marks before anything is sent), else the
   * tracker; throws when neither acknowledged.
   */
  async #makeSafe(rec: MirrorRecord, pin: { held: boolean; safe: boolean }): Promise<ForkOutcome> {
    const { backup, batcher, marker, volume, activity } = this.paths;
    let backupError: unknown = "offline";
    if (this.paths.cycles) {
      await this.paths.cycles.beforeWrite(rec.offset, rec.length);
      backupError = "not sent (cycle mode)";
    } else if (backup.isOnline) {
      if (activity) {
        pin.held = true;
        try {
          const marking = activity.acquire(rec.offset, rec.length);
          if (marking) await marking;
        } catch (err) {
          pin.safe = true; // nothing was sent anywhere
          this.counters.failed++;
          this.#noteFenced(rec, err);
          throw new ServiceError(
            503,
            `Write to volume "${volume}" at ${rec.offset}+${rec.length} failed, primary untouched: ` +
              `the tracker did not record its activity mark: ${(err as Error).message}`,
          );
        }
      }
      try {
        await batcher.submit(rec);
        this.counters.viaBackup++;
        return "backup";
      } catch (err) {
        if (err instanceof RecordRefusedError) {
          // This write's own fault: nothing reached the backup, which stays online.
          pin.safe = true;
          this.counters.failed++;
          throw new ServiceError(
            500,
            `Write to volume "${volume}" at ${rec.offset}+${rec.length} failed, primary untouched: ` +
              err.message,
          );
        }
        // Fenced by the backup: the tracker must not be asked to cover this write instead.
        this.#noteFenced(rec, err, () => this.counters.failed++);
        backupError = err;
        backup.markOffline(err);
      }
    }
    try {
      await backup.settled?.();
      await marker.ensureMarked(rec.offset, rec.length);
      this.counters.viaTracker++;
      return "tracker";
    } catch (trackerError) {
      this.counters.failed++;
      this.#noteFenced(rec, trackerError);
      throw new ServiceError(
        503,
        `Write to volume "${volume}" at ${rec.offset}+${rec.length} failed, primary untouched: ` +
          `backup ${describe(backupError)}; tracker ${describe(trackerError)}`,
      );
    }
  }

  /**
   * The range a write locks: its own bytes, or in cycle mode its whole regions (a cycle copies
   * whole regions, so two writes to one region must not race its copy-before-write).
   */
  #lockSpan(rec: MirrorRecord): { offset: number; length: number } {
    const regionBytes = this.paths.cycles?.regionBytes;
    if (regionBytes === undefined) return rec;
    const offset = Math.floor(rec.offset / regionBytes) * regionBytes;
    const end = Math.min(
      this.sizeBytes,
      Math.ceil((rec.offset + rec.length) / regionBytes) * regionBytes,
    );
    return { offset, length: end - offset };
  }

  /** Throws 409 once the volume's lease is fenced. */
  #checkLease(rec: MirrorRecord): void {
    this.paths.lease?.check(
      `Write to volume "${this.paths.volume}" at ${rec.offset}+${rec.length}`,
    );
  }

  /** When `err` fenced the volume: runs `before` and throws the 409 (primary untouched). */
  #noteFenced(rec: MirrorRecord, err: unknown, before?: () => void): void {
    if (!this.paths.lease?.noteRefusal(err)) return;
    before?.();
    this.#checkLease(rec);
  }
}

/** The error a write fails with when the primary refused it, naming what now covers the range. */
function primaryFailure(
  volume: string,
  rec: MirrorRecord,
  err: unknown,
  outcome: ForkOutcome,
  marked: boolean,
): Error {
  const covered = outcome === "tracker"
    ? "the range is marked at the tracker"
    : marked
    ? "the backup took it, so the range is now marked at the tracker for resync"
    : "the backup took it and the tracker did not take the covering mark yet (regions tainted)";
  const message = `Write to volume "${volume}" at ${rec.offset}+${rec.length} failed: the ` +
    `primary refused it (${err instanceof Error ? err.message : String(err)}); ${covered}`;
  return new DiskWriteError(diskErrorCode(err) ?? "EIO", message);
}

function describe(err: unknown): string {
  return err instanceof Error ? `failed: ${err.message}` : String(err);
}
