/**
 * A resync as one cycle (issue 10): the CYCLE_BEGIN marker goes to the backup before the first
 * copy, on the same ordered link as every mirror write, and the CYCLE_COMMIT marker after the
 * last copy is acknowledged. From the begin on, the backup stages every record of the volume
 * (backup/cycle_stage.ts) and applies them only at the commit, so its secondary stays at the
 * previous point in time until the whole resync lands at once.
 *
 * The caller clears the tracker's marks only after `commit` resolved: the commit is then durable
 * in the backup's journal, and will be applied even across a crash of the backup.
 */
import type { ResyncProgress } from "../../src/host_schemas.ts";
import { encodeCycleMarker } from "../../src/journal_record.ts";
import type { BatchWriter } from "../fork/backup_batcher.ts";

export type CycleState = NonNullable<ResyncProgress["cycle"]>;

export interface ResyncCycleDeps {
  volume: string;
  writer: BatchWriter;
  backup: { readonly isOnline: boolean; markOffline(err: unknown): void };
  /** False: the copies go straight into the secondary (before issue 10; bench and tests). */
  staged: boolean;
}

/** Opens and commits one resync's cycle, keeping `progress.cycle` up to date. */
export class ResyncCycle {
  constructor(private readonly deps: ResyncCycleDeps, private readonly progress: ResyncProgress) {
    progress.cycle = deps.staged ? "opening" : "unstaged";
  }

  /** Sends CYCLE_BEGIN and waits until it is durable at the backup. */
  async begin(): Promise<void> {
    if (!this.deps.staged) return;
    if (!this.deps.backup.isOnline) {
      throw new Error(`Backup is offline: cannot open a resync cycle of "${this.deps.volume}"`);
    }
    await this.#send("cycle-begin");
    this.progress.cycle = "open";
  }

  /** Sends CYCLE_COMMIT after every copy was acknowledged; resolves once it is durable. */
  async commit(): Promise<void> {
    if (!this.deps.staged) return;
    this.progress.cycle = "committing";
    await this.#send("cycle-commit");
    this.progress.cycle = "committed";
  }

  /**
   * The resync failed before its commit was durable: the backup keeps the stage (it holds
   * acknowledged writes) and the next resync's begin continues it; the marks stay.
   */
  abandon(): void {
    if (this.progress.cycle !== "committed" && this.deps.staged) this.progress.cycle = "abandoned";
  }

  async #send(kind: "cycle-begin" | "cycle-commit"): Promise<void> {
    try {
      await this.deps.writer.writeBatch(
        this.deps.volume,
        encodeCycleMarker(kind, this.deps.volume),
      );
    } catch (err) {
      this.deps.backup.markOffline(err);
      throw err;
    }
  }
}
