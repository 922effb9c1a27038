/**
 * The background applier: takes acknowledged batches from the journal in order, writes their
 * records to the secondary files, syncs the files it touched, and only then releases the batches
 * so the journal can reclaim their segments. A crash anywhere in between leaves the records in the
 * journal, and replay applies them again.
 *
 * Checkpoints: applying is cheap, syncing the secondaries is not (each fdatasync competes with the
 * journal's own on one disk). So applied batches accumulate and the secondaries are synced, and
 * the batches released, at a checkpoint: once `applyStepBytesMax` bytes are applied, or
 * `checkpointMs` after the first unsynced apply, or sooner when someone waits (`waitApplied`),
 * the journal is half full, the applier pauses or stops. Journal space is reclaimed only after
 * the checkpoint that covers it, as before.
 *
 * Memory: the batches it works on are the journal's pending bytes, already in memory and bounded
 * by journalBytesMax.
 */
import assert from "node:assert/strict";
import type { FaultFile } from "../src/fault_file.ts";
import { decodeRecord } from "../src/journal_record.ts";
import type { CycleStages } from "./cycle_stage.ts";
import type { Journal, JournalEntry } from "./journal.ts";
import type { SecondaryStore } from "./secondary_store.ts";
import { logLine } from "../src/events.ts";

/** Most bytes applied between two syncs of the secondaries. */
export const applyStepBytesMax = 64 * 1024 * 1024;
/** Longest a applied batch waits for the checkpoint that syncs it. */
export const checkpointMs = 1000;
/** Bytes applied before yielding to the event loop, so HTTP requests keep moving. */
const applyYieldBytes = 8 * 1024 * 1024;
/** Wait before retrying a step that failed (e.g. a full disk). */
const applyRetryMs = 1000;

/** How the applier starts. */
export interface ApplierOptions {
  /** Start paused: nothing is applied until `resume()` (used to hold a backlog in tests). */
  paused?: boolean;
  /** Test-only disk faults (src/fault_file.ts): `secondary=` fails every apply step. */
  faults?: FaultFile;
  /**
   * Consistent resync (issue 10, cycle_stage.ts): routes each batch through the volumes' stages,
   * whose appends are synced at every checkpoint before the journal releases them.
   */
  stages?: CycleStages;
}

/** Applies acknowledged journal batches to the secondaries in order, in the background. */
export class Applier {
  #paused: boolean;
  #resumeWaiters: (() => void)[] = [];
  #appliedWaiters: { records: number; resolve: () => void; reject: (err: Error) => void }[] = [];
  #writtenWaiters: { records: number; resolve: () => void; reject: (err: Error) => void }[] = [];
  /** Records written to the secondaries (synced or not) since the journal was opened. */
  #recordsWritten = 0;
  #loop: Promise<void> | undefined;
  #stopping = false;
  #failure: Error | undefined;
  readonly #faults: FaultFile | undefined;
  readonly #stages: CycleStages | undefined;
  /** Applied, not yet synced: released at the next checkpoint. */
  #unsynced: JournalEntry[] = [];
  #unsyncedBytes = 0;
  #touched = new Set<string>();
  #firstUnsyncedAt = 0;
  /** Secondary syncs done (checkpoints), for metrics and tests. */
  checkpoints = 0;

  constructor(
    private readonly journal: Journal,
    private readonly store: SecondaryStore,
    opts: ApplierOptions = {},
  ) {
    this.#paused = opts.paused ?? false;
    this.#faults = opts.faults;
    this.#stages = opts.stages;
  }

  /** Records applied and synced since the journal was opened. */
  get recordsApplied(): number {
    return this.journal.recordsReleased;
  }
  /** The last step's failure, cleared by the next successful step. */
  get failure(): Error | undefined {
    return this.#failure;
  }

  /** Starts the loop (once). */
  start(): void {
    this.#loop ??= this.#run();
  }

  /** Stops taking new steps after the current one. */
  pause(): void {
    this.#paused = true;
    this.#kick?.();
  }

  /** Lets the loop take steps again. */
  resume(): void {
    this.#paused = false;
    for (const wake of this.#resumeWaiters.splice(0)) wake();
  }

  /** Resolves once `records` records (counted since open) are applied and synced. */
  waitApplied(records: number): Promise<void> {
    if (this.recordsApplied >= records) return Promise.resolve();
    if (this.#stopping) return Promise.reject(new Error("The applier is stopped"));
    const waiting = new Promise<void>((resolve, reject) => {
      this.#appliedWaiters.push({ records, resolve, reject });
    });
    this.#kick?.();
    return waiting;
  }

  /**
   * Resolves once `records` records (counted since open) are written to the secondaries, synced
   * or not: enough for a reader of the secondary files (checksums), without forcing a checkpoint.
   */
  waitWritten(records: number): Promise<void> {
    if (this.#recordsWritten >= records) return Promise.resolve();
    if (this.#stopping) return Promise.reject(new Error("The applier is stopped"));
    return new Promise<void>((resolve, reject) => {
      this.#writtenWaiters.push({ records, resolve, reject });
    });
  }

  /** Finishes the current step and stops; call after the journal is closed. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.resume();
    this.#kick?.();
    await this.#loop;
    for (const w of this.#appliedWaiters.splice(0)) w.reject(new Error("The applier is stopped"));
    for (const w of this.#writtenWaiters.splice(0)) w.reject(new Error("The applier is stopped"));
  }

  async #run(): Promise<void> {
    try {
      while (!this.#stopping) {
        if (this.#paused) {
          await this.#checkpoint();
          if (!this.#paused) continue;
          await new Promise<void>((resolve) => this.#resumeWaiters.push(resolve));
          continue;
        }
        if (this.#unsynced.length > 0 && this.#checkpointDue()) {
          await this.#checkpoint();
          continue;
        }
        await this.#waitWork();
        if (this.#stopping || this.#paused) continue;
        const entries = this.journal.takeDurable(applyStepBytesMax);
        if (entries.length === 0) {
          if (this.journal.closed) return;
          continue;
        }
        await this.#step(entries);
      }
    } finally {
      await this.#checkpoint();
    }
  }

  /** A checkpoint is due: enough applied, waited long enough, or someone needs it now. */
  #checkpointDue(): boolean {
    return this.#unsyncedBytes >= applyStepBytesMax ||
      performance.now() - this.#firstUnsyncedAt >= checkpointMs ||
      this.#appliedWaiters.length > 0 ||
      this.journal.pendingBytes * 2 >= this.journal.journalBytesMax ||
      this.journal.closed;
  }

  /** Waits for a durable batch, or until the pending checkpoint's time bound. */
  async #waitWork(): Promise<void> {
    if (this.#unsynced.length === 0) return await this.journal.waitDurable();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = this.#firstUnsyncedAt + checkpointMs - performance.now();
    await Promise.race([
      this.journal.waitDurable(),
      new Promise<void>((r) => timer = setTimeout(r, Math.max(0, deadline))),
      new Promise<void>((r) => this.#kick = r),
    ]);
    clearTimeout(timer);
    this.#kick = undefined;
  }

  /** Wakes `#waitWork` early (a waiter or stop wants the checkpoint now). */
  #kick: (() => void) | undefined;

  /** Applies `entries` until it succeeds; order forbids skipping one. */
  async #step(entries: JournalEntry[]): Promise<void> {
    for (;;) {
      try {
        await this.#apply(entries, this.#touched);
        this.#failure = undefined;
        break;
      } catch (err) {
        this.#failure = err as Error;
        logLine(
          "backup",
          "error",
          `Applier: ${(err as Error).message}; retrying in ${applyRetryMs} ms`,
        );
        if (this.#stopping) return;
        await new Promise((r) => setTimeout(r, applyRetryMs));
      }
    }
    if (this.#unsynced.length === 0) this.#firstUnsyncedAt = performance.now();
    this.#unsynced.push(...entries);
    for (const e of entries) {
      this.#unsyncedBytes += e.body.length;
      this.#recordsWritten += e.records;
    }
    const written = this.#recordsWritten;
    this.#writtenWaiters = this.#writtenWaiters.filter((w) => {
      if (w.records > written) return true;
      w.resolve();
      return false;
    });
  }

  /**
   * Syncs the secondaries touched since the last checkpoint and releases what they cover. After a
   * failed sync the written pages may be gone, so every unsynced batch is applied again first.
   */
  async #checkpoint(): Promise<void> {
    if (this.#unsynced.length === 0) return;
    for (let attempt = 0;; attempt++) {
      try {
        if (attempt > 0) await this.#apply(this.#unsynced, this.#touched);
        await this.store.sync(this.#touched);
        this.#stages?.syncSync();
        await this.journal.release(this.#unsynced);
        this.#failure = undefined;
        break;
      } catch (err) {
        this.#failure = err as Error;
        logLine(
          "backup",
          "error",
          `Applier: ${(err as Error).message}; retrying in ${applyRetryMs} ms`,
        );
        if (this.#stopping && attempt > 0) return;
        await new Promise((r) => setTimeout(r, applyRetryMs));
      }
    }
    this.checkpoints++;
    this.#unsynced = [];
    this.#unsyncedBytes = 0;
    this.#touched = new Set();
    const applied = this.recordsApplied;
    this.#appliedWaiters = this.#appliedWaiters.filter((w) => {
      if (w.records > applied) return true;
      w.resolve();
      return false;
    });
  }

  /** Writes every record of `entries`, adding the volumes touched to `touched`. */
  async #apply(entries: readonly JournalEntry[], touched: Set<string>): Promise<void> {
    this.#faults?.check("secondary", "Applying to the secondaries");
    let sinceYield = 0;
    for (const entry of entries) {
      if (this.#stages) {
        this.#stages.applyBatch(entry.body, touched, {
          segment: entry.segment,
          offset: entry.offset,
        });
      } else applyBatch(this.store, entry.body, touched);
      sinceYield += entry.body.length;
      if (sinceYield >= applyYieldBytes) {
        sinceYield = 0;
        await new Promise((r) => setTimeout(r, 0));
      }
    }
  }
}

/**
 * Writes the records of one batch to the secondaries. The batch was verified before it was
 * journaled; its checksums are verified again here, as the bytes are read back.
 */
export function applyBatch(store: SecondaryStore, body: Uint8Array, touched: Set<string>): number {
  let records = 0;
  for (let pos = 0; pos < body.length;) {
    const decoded = decodeRecord(body, pos);
    assert.ok(decoded.ok, `Journaled batch fails verification at byte ${pos}`);
    store.applySync(decoded.record);
    touched.add(decoded.record.volume);
    records++;
    pos = decoded.next;
  }
  return records;
}
