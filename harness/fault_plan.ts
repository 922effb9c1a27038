/**
 * The fault simulation's schedule: which faults a round injects, when and for how long, drawn
 * from one seeded PRNG before the round starts, so a round is replayed from its seed alone (the
 * processes' timing is not deterministic; the schedule and the workload's bytes are). Pure: no
 * process is touched here.
 */

/** Every fault the simulation knows. */
export const faultKinds = [
  // SIGKILL, an outage of `forMs`, then the same process again on the same port and data.
  "kill-tracker",
  "kill-backup",
  "kill-host",
  // SIGSTOP for `forMs`, then SIGCONT: a process that answers nothing but keeps its sockets.
  "stop-tracker",
  "stop-backup",
  // The TcpProxy between host and backup link ("link"), host and tracker ("tracker-net"), host
  // and the backup's HTTP API ("backup-http"): delay every chunk; hold (a partition that drops
  // packets: TCP retransmits, nothing arrives until it heals); cut every live connection once;
  // refuse new connections (and cut the live ones) as a dead peer's port does.
  "link-delay",
  "link-hold",
  "link-cut",
  "link-refuse",
  "tracker-net-delay",
  "tracker-net-hold",
  "tracker-net-cut",
  "tracker-net-refuse",
  "backup-http-hold",
  "backup-http-refuse",
  // A line in the services' TRACKMIRROR_FAULT_FILE for `forMs` (at least a second): journal,
  // primary or secondary (the backup's applier) writes fail.
  "journal-enospc",
  "journal-eio",
  "primary-enospc",
  "primary-eio",
  "secondary-enospc",
  "secondary-eio",
  // The tracker's KV replaced while it is down: by an empty one, or by a copy from before a
  // dirty mark (the mark is lost). Afterwards the host must say `checksum-resync-needed`.
  "kv-empty",
  "kv-older",
  // A second host agent for the same volume on another primary; it must be refused (409).
  "second-agent-same-id",
  "second-agent-other-id",
  // Not a fault but an operator's action racing the others: a resync started mid-workload
  // (POST /v1/volumes/{name}/resync on the host), so kills, cuts and writes land during its copy.
  "resync-during",
] as const;

export type FaultKind = typeof faultKinds[number];

/** One fault of a round's schedule. */
export interface ScheduledFault {
  kind: FaultKind;
  /** When it starts, from the round's start (it may wait longer for a fault on the same target). */
  atMs: number;
  /** How long it lasts before it heals. */
  forMs: number;
  /** The proxy delay per chunk, for `*-delay`. */
  delayMs?: number;
}

/** Bounds of a round's schedule. */
export interface PlanBounds {
  faultsPerRoundMax: number;
  /** Latest start of a fault after the round's start. */
  startMsMax: number;
  forMsMin: number;
  forMsMax: number;
  /** Largest proxy delay per chunk. */
  delayMsMax: number;
}

export const planBoundsDefault: PlanBounds = {
  faultsPerRoundMax: 3,
  startMsMax: 1000,
  forMsMin: 100,
  forMsMax: 1200,
  delayMsMax: 80,
};

/** Draws 1 .. `faultsPerRoundMax` faults of the `enabled` kinds, in start order. */
export function planRound(
  rand: () => number,
  enabled: readonly FaultKind[],
  bounds: PlanBounds = planBoundsDefault,
): ScheduledFault[] {
  if (enabled.length === 0) throw new RangeError("No fault kind is enabled");
  const count = 1 + Math.floor(rand() * bounds.faultsPerRoundMax);
  const faults: ScheduledFault[] = [];
  for (let i = 0; i < count; i++) {
    const kind = enabled[Math.floor(rand() * enabled.length)];
    const fault: ScheduledFault = {
      kind,
      atMs: Math.floor(rand() * bounds.startMsMax),
      forMs: bounds.forMsMin + Math.floor(rand() * (bounds.forMsMax - bounds.forMsMin)),
    };
    if (kind.endsWith("-delay")) fault.delayMs = 1 + Math.floor(rand() * bounds.delayMsMax);
    faults.push(fault);
  }
  return faults.sort((a, b) => a.atMs - b.atMs);
}

/** The schedule as one line per fault, for failure messages. */
export function describeSchedule(faults: readonly ScheduledFault[]): string {
  return faults.map((f) =>
    `  at ${f.atMs} ms: ${f.kind} for ${f.forMs} ms` +
    (f.delayMs !== undefined ? ` (delay ${f.delayMs} ms per chunk)` : "")
  ).join("\n");
}

/** Parses a comma list of kinds (`TRACKMIRROR_FAULTS`); "all" is every kind. */
export function parseFaultKinds(text: string): FaultKind[] {
  if (text.trim() === "all") return [...faultKinds];
  return text.split(",").map((s) => s.trim()).filter((s) => s !== "").map((s) => {
    if (!(faultKinds as readonly string[]).includes(s)) {
      throw new RangeError(
        `TRACKMIRROR_FAULTS names an unknown fault kind "${s}"; known: ${faultKinds.join(", ")}`,
      );
    }
    return s as FaultKind;
  });
}
