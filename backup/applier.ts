/**
 * The background applier: takes acknowledged batches from the journal in order, writes their
 * records to the secondary files, syncs the files it touched, and only then releases the batches
 * so the journal can reclaim their segments. A crash anywhere in between leaves the records in the
 * journal, and replay applies them again.
 *
 * Memory: the batches it works on are the journal's pending bytes, already in memory and bounded
 * by journalBytesMax; one step takes at most `applyStepBytesMax` of them, so a sync (and a
 * release) comes at least that often.
 */
import assert from "node:assert/strict";
import { decodeRecord } from "../src/journal_record.ts";
import type { Journal, JournalEntry } from "./journal.ts";
import type { SecondaryStore } from "./secondary_store.ts";

/** Most bytes applied between two syncs of the secondaries. */
export const applyStepBytesMax = 64 * 1024 * 1024;
/** Bytes applied before yielding to the event loop, so HTTP requests keep moving. */
const applyYieldBytes = 8 * 1024 * 1024;
/** Wait before retrying a step that failed (e.g. a full disk). */
const applyRetryMs = 1000;

/** How the applier starts. */
export interface ApplierOptions {
  /** Start paused: nothing is applied until `resume()` (used to hold a backlog in tests). */
  paused?: boolean;
}

/** Applies acknowledged journal batches to the secondaries in order, in the background. */
export class Applier {
  #paused: boolean;
  #resumeWaiters: (() => void)[] = [];
  #appliedWaiters: { records: number; resolve: () => void; reject: (err: Error) => void }[] = [];
  #loop: Promise<void> | undefined;
  #stopping = false;
  #failure: Error | undefined;

  constructor(
    private readonly journal: Journal,
    private readonly store: SecondaryStore,
    opts: ApplierOptions = {},
  ) {
    this.#paused = opts.paused ?? false;
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
    return new Promise((resolve, reject) => {
      this.#appliedWaiters.push({ records, resolve, reject });
    });
  }

  /** Finishes the current step and stops; call after the journal is closed. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.resume();
    await this.#loop;
    for (const w of this.#appliedWaiters.splice(0)) w.reject(new Error("The applier is stopped"));
  }

  async #run(): Promise<void> {
    while (!this.#stopping) {
      if (this.#paused) {
        await new Promise<void>((resolve) => this.#resumeWaiters.push(resolve));
        continue;
      }
      await this.journal.waitDurable();
      if (this.#stopping || this.#paused) continue;
      const entries = this.journal.takeDurable(applyStepBytesMax);
      if (entries.length === 0) {
        if (this.journal.closed) return;
        continue;
      }
      await this.#step(entries);
    }
  }

  /** Applies `entries` until it succeeds; order forbids skipping one. */
  async #step(entries: JournalEntry[]): Promise<void> {
    for (;;) {
      try {
        const touched = await this.#apply(entries);
        await this.store.sync(touched);
        await this.journal.release(entries);
        this.#failure = undefined;
        break;
      } catch (err) {
        this.#failure = err as Error;
        console.error(`Applier: ${(err as Error).message}; retrying in ${applyRetryMs} ms`);
        if (this.#stopping) return;
        await new Promise((r) => setTimeout(r, applyRetryMs));
      }
    }
    const applied = this.recordsApplied;
    this.#appliedWaiters = this.#appliedWaiters.filter((w) => {
      if (w.records > applied) return true;
      w.resolve();
      return false;
    });
  }

  /** Writes every record of `entries`; returns the volumes touched. */
  async #apply(entries: readonly JournalEntry[]): Promise<Set<string>> {
    const touched = new Set<string>();
    let sinceYield = 0;
    for (const entry of entries) {
      applyBatch(this.store, entry.body, touched);
      sinceYield += entry.body.length;
      if (sinceYield >= applyYieldBytes) {
        sinceYield = 0;
        await new Promise((r) => setTimeout(r, 0));
      }
    }
    return touched;
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
