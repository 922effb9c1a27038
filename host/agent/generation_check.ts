/**
 * The decision taken at every connect between a primary and its peers (issue 9; DRBD compares
 * its generation UUIDs the same way): the host's registration with the tracker (start and every
 * lease renewal, and each tracking answer), and its registration with the backup (every probe).
 *
 * Pure: it compares what the primary recorded (its generation sidecar) with what the peer
 * answered, and says what happened and what to record now. The caller applies the outcome
 * (volume_trust.ts). The table in ARCHITECTURE.md ("Generations and trust") lists every row;
 * tests/host_generation_check.test.ts checks each.
 */

/** How far the mirror of a volume can be trusted. */
export type Trust = "trusted" | "checksum-resync-needed" | "split-brain";

/** What one connect found. */
export type GenerationOutcome = "in-sync" | "bitmap" | "record-lost" | "split-brain";

/** What the primary recorded of itself and its peers (the sidecar's generation fields). */
export interface RecordedGenerations {
  /** The primary's own generation: made when its sidecar was made, never changed. */
  primaryGeneration: string;
  /** The tracker record's generation last seen; null before the first connect. */
  trackerGeneration: string | null;
  /** The highest mark sequence of that record seen. */
  markSeq: number;
  /** The secondary's generation last paired with; null before the first connect. */
  secondaryGeneration: string | null;
}

/** What the tracker answered (volume info, or a tracking answer). */
export interface TrackerPeer {
  kind: "tracker";
  generation: string;
  markSeq: number;
  /** Dirty regions, when known: > 0 makes an agreeing connect a "bitmap" one. */
  dirtyRegions?: number;
}

/** What the backup answered a registration with. */
export interface SecondaryPeer {
  kind: "secondary";
  generation: string;
  /** The primary generation that last wrote the secondary; null: none recorded. */
  writerGeneration: string | null;
}

export interface GenerationDecision {
  outcome: GenerationOutcome;
  /** What was found, naming the generations (for status and logs); null when nothing is amiss. */
  reason: string | null;
  /** What the primary records from now on. */
  recorded: RecordedGenerations;
}

/** Compares one peer's answer with what the primary recorded (see the file comment). */
export function checkGenerations(
  volume: string,
  recorded: RecordedGenerations,
  peer: TrackerPeer | SecondaryPeer,
): GenerationDecision {
  return peer.kind === "tracker"
    ? checkTracker(volume, recorded, peer)
    : checkSecondary(volume, recorded, peer);
}

function checkTracker(
  volume: string,
  recorded: RecordedGenerations,
  peer: TrackerPeer,
): GenerationDecision {
  const adopted = { ...recorded, trackerGeneration: peer.generation, markSeq: peer.markSeq };
  if (recorded.trackerGeneration === null) {
    return { outcome: "in-sync", reason: null, recorded: adopted };
  }
  if (peer.generation !== recorded.trackerGeneration) {
    return {
      outcome: "record-lost",
      reason: `the tracker's record of volume "${volume}" has generation ${peer.generation}, ` +
        `not ${recorded.trackerGeneration} as recorded: it was lost (new or emptied KV) or is ` +
        `another tracker's, so it does not cover the differences marked before`,
      recorded: adopted,
    };
  }
  if (peer.markSeq < recorded.markSeq) {
    return {
      outcome: "record-lost",
      reason: `the tracker's record of volume "${volume}" is at mark sequence ${peer.markSeq}, ` +
        `behind ${recorded.markSeq} seen before: its KV is an older copy and lost later marks`,
      recorded: adopted,
    };
  }
  return {
    outcome: (peer.dirtyRegions ?? 0) > 0 ? "bitmap" : "in-sync",
    reason: null,
    recorded: { ...recorded, markSeq: Math.max(recorded.markSeq, peer.markSeq) },
  };
}

function checkSecondary(
  volume: string,
  recorded: RecordedGenerations,
  peer: SecondaryPeer,
): GenerationDecision {
  if (peer.writerGeneration !== null && peer.writerGeneration !== recorded.primaryGeneration) {
    // Nothing adopted: the pairing this primary knew stays what it was until the operator decides.
    return {
      outcome: "split-brain",
      reason: `the secondary of volume "${volume}" (generation ${peer.generation}) was last ` +
        `written by primary generation ${peer.writerGeneration}, not by this primary ` +
        `(${recorded.primaryGeneration}${
          recorded.secondaryGeneration === null
            ? ", never paired with it"
            : `, paired with secondary ${recorded.secondaryGeneration}`
        }): both sides may hold writes the other lacks`,
      recorded,
    };
  }
  const adopted = { ...recorded, secondaryGeneration: peer.generation };
  if (recorded.secondaryGeneration === null) {
    return { outcome: "in-sync", reason: null, recorded: adopted };
  }
  if (peer.generation !== recorded.secondaryGeneration) {
    return {
      outcome: "record-lost",
      reason: `the secondary of volume "${volume}" has generation ${peer.generation}, not ` +
        `${recorded.secondaryGeneration} as paired: it was recreated or replaced, so the ` +
        `tracker's marks do not cover what it lacks`,
      recorded: adopted,
    };
  }
  return { outcome: "in-sync", reason: null, recorded };
}

/**
 * The trust after an outcome: a loss or a split brain is never forgotten by a later connect that
 * agrees (only a checksum resync, or discarding one side, restores trust), and a split brain
 * outranks a lost record.
 */
export function nextTrust(current: Trust, outcome: GenerationOutcome): Trust {
  if (outcome === "split-brain") return "split-brain";
  if (outcome === "record-lost") {
    return current === "split-brain" ? "split-brain" : "checksum-resync-needed";
  }
  return current;
}
