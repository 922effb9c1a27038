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
 * the journal is half full or a sender waits for its room (`Journal.wantRoom`), the applier
 * pauses or stops. In a journal smaller than four steps the step is a quarter of the journal. Journal
 * space is reclaimed only after the checkpoint that covers it, as before.
 *
 * The writes themselves run on a worker thread with its own file handles (apply_thread.ts), so a
 * large apply step never stalls the event loop the link and the journal share; this loop only
 * decides what to apply, syncs at checkpoints and releases. It takes durable batches in steps
 * of about `applyMessageBytesMax`, or after `applyDelayMs`, not one group commit at a time: each
 * step is a round trip to the worker.
 *
 * Memory: the batches it works on are the journal's pending bytes, already in memory and bounded
 * by journalBytesMax (plus one message of at most `applyMessageBytesMax` on its way to the worker).
 */
import type { FaultFile } from "../src/fault_file.ts";
import { applyMessageBytesMax, ApplyThread } from "./apply_thread.ts";
import type { CycleStages } from "./cycle_stage.ts";
import type { Journal, JournalEntry } from "./journal.ts";
import type { SecondaryStore } from "./secondary_store.ts";
import { logLine } from "../src/events.ts";

/** Most bytes applied between two syncs of the secondaries. */
export const applyStepBytesMax = 64 * 1024 * 1024;
/** Longest a applied batch waits for the checkpoint that syncs it. */
export const checkpointMs = 1000;
/**
 * Longest a durable batch waits to be applied while less than a message's worth
 * (`applyMessageBytesMax`) is waiting: applying is background work, so it goes in large steps.
 */
export const applyDelayMs = 100;
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
  /** When the applier first saw the durable batches now waiting; 0: none wait. */
  #durableSeenAt = 0;
  readonly #thread: ApplyThread;
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
    this.#thread = new ApplyThread(store.dir);
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
    const waiting = new Promise<void>((resolve, reject) => {
      this.#writtenWaiters.push({ records, resolve, reject });
    });
    this.#kick?.();
    return waiting;
  }

  /** Finishes the current step and stops; call after the journal is closed. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.resume();
    this.#kick?.();
    await this.#loop;
    await this.#thread.close();
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
        if (this.journal.durableBytes === 0) {
          if (this.journal.closed) return;
          continue;
        }
        if (!this.#takeDue(performance.now())) continue;
        const entries = this.journal.takeDurable(this.#stepBytes);
        this.#durableSeenAt = this.journal.durableBytes > 0 ? performance.now() : 0;
        await this.#step(entries);
      }
    } finally {
      await this.#checkpoint();
    }
  }

  /** A checkpoint is due: enough applied, waited long enough, or someone needs it now. */
  #checkpointDue(): boolean {
    return this.#unsyncedBytes >= this.#stepBytes ||
      performance.now() - this.#firstUnsyncedAt >= checkpointMs ||
      this.#appliedWaiters.length > 0 ||
      this.#pressed();
  }

  /**
   * The journal needs its space back now: half full, a sender waits for room (`wantRoom`: a
   * link's credit is short), or it is closing. Nothing should wait for a size or time bound then.
   */
  #pressed(): boolean {
    return this.journal.pendingBytes * 2 >= this.journal.journalBytesMax ||
      this.journal.roomWanted || this.journal.closed;
  }

  /**
   * Unsynced bytes at which a checkpoint is due by size: `applyStepBytesMax`, or a quarter of a
   * journal too small for it, so a small journal's room comes back in several steps, not one.
   */
  get #stepBytes(): number {
    return Math.min(applyStepBytesMax, Math.ceil(this.journal.journalBytesMax / 4));
  }

  /**
   * Durable batches are worth taking now: a message's worth, or the oldest has waited
   * `applyDelayMs`, or someone waits for them. Taking every group commit as it comes cost one
   * message to the worker (about 50 µs of CPU on both threads, measured) per ~10 records.
   */
  #takeDue(now: number): boolean {
    const bytes = this.journal.durableBytes;
    if (bytes === 0) return false;
    if (this.#durableSeenAt === 0) this.#durableSeenAt = now;
    return bytes >= Math.min(applyMessageBytesMax, this.#stepBytes) ||
      now - this.#durableSeenAt >= applyDelayMs ||
      this.#appliedWaiters.length > 0 || this.#writtenWaiters.length > 0 || this.#pressed();
  }

  /**
   * Waits until durable batches are due (see `#takeDue`), or the pending checkpoint's time bound,
   * or a kick.
   */
  async #waitWork(): Promise<void> {
    const now = performance.now();
    if (this.#takeDue(now)) return;
    const deadlines: number[] = [];
    if (this.#unsynced.length > 0) deadlines.push(this.#firstUnsyncedAt + checkpointMs);
    if (this.#durableSeenAt > 0) deadlines.push(this.#durableSeenAt + applyDelayMs);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const waits = [
      this.journal.waitDurable(this.#dueBytes()),
      new Promise<void>((r) => this.#kick = r),
    ];
    if (deadlines.length > 0) {
      waits.push(
        new Promise<void>((r) => {
          timer = setTimeout(r, Math.max(0, Math.min(...deadlines) - now));
        }),
      );
    }
    await Promise.race(waits);
    clearTimeout(timer);
    this.#kick = undefined;
  }

  /**
   * Durable bytes at which waiting batches become due by size: a message's worth, or fewer when
   * the journal would be half full sooner (a small journal must not wait `applyDelayMs` to be
   * drained, nor hide an applier failure that long).
   */
  #dueBytes(): number {
    const durable = this.journal.durableBytes;
    if (durable === 0) return 1;
    const toHalf = Math.ceil(this.journal.journalBytesMax / 2) - this.journal.pendingBytes;
    return Math.max(1, Math.min(applyMessageBytesMax, this.#stepBytes, durable + toHalf));
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

  /**
   * Writes every record of `entries`, adding the volumes touched to `touched`. Batches that go
   * straight to the secondaries (no cycle marker, no volume with an open stage, nothing a
   * watermark skips: `CycleStages.straightThrough`) are written on the worker; any other batch
   * goes through the stages here, synchronously, once the worker has written everything before
   * it: a commit or a begin syncs and applies with every earlier record in place, as in order.
   */
  async #apply(entries: readonly JournalEntry[], touched: Set<string>): Promise<void> {
    this.#faults?.check("secondary", "Applying to the secondaries");
    const stages = this.#stages;
    if (stages === undefined) return await this.#thread.apply(entries, touched);
    let from = 0;
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i];
      const at = { segment: entry.segment, offset: entry.offset };
      if (stages.straightThrough(entry.body, at)) continue;
      if (i > from) await this.#thread.apply(entries.slice(from, i), touched);
      from = i + 1;
      stages.applyBatch(entry.body, touched, at);
    }
    if (entries.length > from) await this.#thread.apply(entries.slice(from), touched);
  }
}
