/**
 * Issue 10: when the backup comes back, a volume with dirty marks must not take mirrored writes
 * straight into its secondary — the secondary still lacks the marked regions, so it would become
 * a mix of old and new. Before the link is declared online (BackupLink's `beforeOnline`), a
 * `cycle-begin` marker goes first on the new link for every volume the tracker holds dirty: the
 * backup then stages every later write of it until a resync's commit (backup/cycle_stage.ts), and
 * the secondary stays at its last point in time. The resync's own begin continues that stage.
 *
 * When the tracker cannot say (unreachable), the cycle is opened anyway: staging is always safe
 * for consistency, and the volume's next resync commits it.
 */
import { encodeCycleMarker } from "../../src/journal_record.ts";
import type { HostTracker } from "./ports.ts";
import { logLine } from "../../src/events.ts";

/** Opens a cycle for each volume in `volumes` that is dirty (or whose state is unknown). */
export async function openCyclesOnReturn(
  tracker: Pick<HostTracker, "getVolume">,
  volumes: string[],
  send: (volume: string, body: Uint8Array) => Promise<void>,
): Promise<string[]> {
  const opened: string[] = [];
  for (const name of volumes) {
    let dirty = true;
    try {
      dirty = (await tracker.getVolume(name)).dirtyRegions > 0;
    } catch (err) {
      logLine(
        "host",
        "warn",
        `volume "${name}": the tracker did not say whether it is dirty ` +
          `(${(err as Error).message}); its secondary is held at its last point in time`,
      );
    }
    if (!dirty) continue;
    await send(name, encodeCycleMarker("cycle-begin", name));
    opened.push(name);
  }
  return opened;
}
