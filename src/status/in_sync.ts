/**
 * When `deno task status` calls a volume in sync — DRBD's `UpToDate/UpToDate`, `rbd mirror image
 * status`'s `up+replaying` with nothing behind. All of these must hold, each a fact a service
 * states about itself, never one inferred from another:
 *
 * 1. the tracker holds no dirty region of the volume (nothing written while the backup was away
 *    waits for a resync);
 * 2. the owner's host agent sees its backup `online` (writes are forked to it: mode mirroring);
 * 3. the backup's lag for the volume is zero: every record it journaled is applied and synced to
 *    the secondary (a backup that does not report lag, or cannot be reached, is not zero);
 * 4. the volume's trust is `trusted` (no lost tracker record, no split brain);
 * 5. no resync of the volume is running;
 * 6. no cycle of the volume is open at the backup (its secondary is then held at an earlier point
 *    in time until the cycle commits);
 * 7. the volume is served by its owner and not fenced.
 *
 * `notInSyncReasons` lists every rule that fails, in words; in sync means the list is empty.
 */
import { formatBytes } from "../extent.ts";

/** What the rule looks at, gathered from the tracker, the owning host agent and its backup. */
export interface InSyncFacts {
  dirtyRegions: number;
  dirtyBytes: number;
  /** The owner's view of its backup: `online`, `offline`, `probing`, `degraded`; null: no owner answer. */
  backupState: string | null;
  /** The backup's lag for the volume; null when the backup did not say (unreachable, older). */
  lag: { bytes: number; records: number; seconds: number } | null;
  /** null when the owner did not answer. */
  trust: string | null;
  resyncRunning: boolean;
  /** Records staged by an open cycle at the backup; 0 when none is open (or unknown). */
  openCycleRecords: number;
  /** False when the owner agent answered but does not serve the volume. */
  served: boolean;
  fenced: boolean;
}

/** Every failed rule in words; empty when the volume is in sync. */
export function notInSyncReasons(f: InSyncFacts): string[] {
  const reasons: string[] = [];
  if (f.dirtyRegions > 0) {
    reasons.push(
      `the tracker holds ${f.dirtyRegions} dirty region(s) (${formatBytes(f.dirtyBytes)})`,
    );
  }
  if (f.backupState === null) reasons.push("the owner's host agent did not answer");
  else if (!f.served) reasons.push("the owner's host agent does not serve it");
  else if (f.backupState !== "online") reasons.push(`the owner sees its backup ${f.backupState}`);
  if (f.lag === null) reasons.push("the backup's lag is unknown");
  else if (f.lag.records > 0) {
    reasons.push(
      `the backup lags ${f.lag.records} record(s) (${formatBytes(f.lag.bytes)}, ` +
        `${f.lag.seconds.toFixed(1)} s)`,
    );
  }
  if (f.trust !== null && f.trust !== "trusted") reasons.push(`trust is ${f.trust}`);
  if (f.resyncRunning) reasons.push("a resync is running");
  if (f.openCycleRecords > 0) {
    reasons.push(`a cycle is open at the backup (${f.openCycleRecords} record(s) staged)`);
  }
  if (f.fenced) reasons.push("the owner is fenced (another instance took the volume)");
  return reasons;
}
