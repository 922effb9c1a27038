/**
 * One volume's trust (issue 9): its generation sidecar in memory, the decision at every connect
 * (generation_check.ts) applied, and what follows from it.
 *
 * - `record-lost` → trust `checksum-resync-needed`, persisted; the marked-region cache and the
 *   activity hot set are dropped (they claim marks the tracker no longer holds), so every later
 *   write is marked or journaled; a loud warning names the volume and what was found. Writes go on.
 * - `split-brain` → trust `split-brain`, persisted; mirroring of this volume stops (`mirrorAllowed`,
 *   the fork layer then marks at the tracker), the caches are dropped too, and the warning names
 *   the command that resolves it.
 * - A plain resync is refused unless trusted (`plainResyncRefusal`); a checksum resync that
 *   succeeded calls `markTrusted`.
 *
 * The highest mark sequence seen rises with every tracking answer (in memory) and is persisted
 * when a lease renewal checks the tracker, so an older copy of the tracker's KV is noticed.
 */
import {
  checkGenerations,
  type GenerationDecision,
  nextTrust,
  type Trust,
} from "./generation_check.ts";
import { openSidecar, type PrimarySidecar, writeSidecar } from "../fork/generation_sidecar.ts";
import type { SecondaryRegistered } from "./ports.ts";
import { emit, logLine } from "../../src/events.ts";

/** What the tracker's answers carry (fields absent from trackers without generations). */
export interface TrackerGenerationAnswer {
  generation?: string;
  markSeq?: number;
  dirtyRegions?: number;
}

/** What a host had seen of the tracker's record when it sent a request. */
export interface TrackerSeen {
  generation: string | null;
  markSeq: number;
}

/** What the trust drops when the record it relied on is gone. */
export interface TrustCaches {
  forgetAll(): void;
}

/** The command that resolves a split brain by keeping this primary. */
export function discardSecondaryCommand(volume: string): string {
  return `deno task reconstruct --volume ${volume} --checksum --discard-secondary`;
}

/** The command that repairs a lost record. */
export function checksumCommand(volume: string): string {
  return `deno task reconstruct --volume ${volume} --checksum`;
}

export class VolumeTrust {
  #sidecar: PrimarySidecar;
  /** Highest mark sequence seen since start (≥ the sidecar's). */
  #markSeqSeen: number;
  /**
   * The mark sequence in the sidecar file. The in-memory sidecar follows tracking answers at
   * once, the file only at the next persisting check (a lease renewal): compared with this, not
   * with the in-memory copy, or a sequence learnt from a tracking answer would never reach the
   * file, and a restarted agent could not tell an older copy of the tracker's record.
   */
  #persistedMarkSeq: number;
  #writes: Promise<void> = Promise.resolve();
  /** Losses and split brains noticed since start: a checksum resync begun before one proves nothing. */
  #losses = 0;
  /** The mark sequence adopted with the tracker generation recorded now (the floor of its answers). */
  #adoptedMarkSeq = 0;
  /** Caches dropped when the record is lost (the marker's and the activity record's). */
  readonly caches: TrustCaches[] = [];

  private constructor(
    readonly volume: string,
    readonly path: string,
    sidecar: PrimarySidecar,
    private readonly now: () => number,
  ) {
    this.#sidecar = sidecar;
    this.#markSeqSeen = sidecar.markSeq;
    this.#persistedMarkSeq = sidecar.markSeq;
  }

  /** Reads (or makes) the sidecar beside `primaryPath`; see generation_sidecar.ts. */
  static async open(volume: string, primaryPath: string, now: () => number): Promise<VolumeTrust> {
    const { path, sidecar } = await openSidecar(volume, primaryPath);
    const trust = new VolumeTrust(volume, path, sidecar, now);
    if (sidecar.trust !== "trusted") trust.#warn(sidecar.trustReason ?? "(no reason recorded)");
    return trust;
  }

  get trust(): Trust {
    return this.#sidecar.trust;
  }

  get trustReason(): string | null {
    return this.#sidecar.trustReason;
  }

  get primaryGeneration(): string {
    return this.#sidecar.primaryGeneration;
  }

  /** The sidecar as it is now (for status). */
  get sidecar(): Readonly<PrimarySidecar> {
    return { ...this.#sidecar, markSeq: this.#markSeqSeen };
  }

  /** Highest mark sequence seen. */
  get markSeqSeen(): number {
    return this.#markSeqSeen;
  }

  /** What was seen of the tracker; take it before a call whose answer `checkTracker` checks. */
  snapshot(): TrackerSeen {
    return { generation: this.#sidecar.trackerGeneration, markSeq: this.#markSeqSeen };
  }

  /** False in split brain: this volume's writes are then marked at the tracker, not mirrored. */
  get mirrorAllowed(): boolean {
    return this.#sidecar.trust !== "split-brain";
  }

  /**
   * Checks a tracker answer (registration, volume info, tracking answer). `seen` is `snapshot()`
   * taken before the request was sent: an answer is only behind what was seen before it was asked
   * for (answers to concurrent requests arrive in any order). If another generation was adopted
   * since, the floor is the sequence adopted with it. `persist` writes the sidecar even when only
   * the sequence moved (lease renewals do; tracking answers do not, to keep the write path free of
   * file writes).
   */
  async checkTracker(
    answer: TrackerGenerationAnswer,
    seen: TrackerSeen,
    persist: boolean,
  ): Promise<GenerationDecision | undefined> {
    if (answer.generation === undefined || answer.markSeq === undefined) return undefined;
    const floor = seen.generation === this.#sidecar.trackerGeneration
      ? seen.markSeq
      : this.#adoptedMarkSeq;
    const decision = checkGenerations(this.volume, this.#recorded(floor), {
      kind: "tracker",
      generation: answer.generation,
      markSeq: answer.markSeq,
      dirtyRegions: answer.dirtyRegions,
    });
    await this.#apply(decision, persist);
    return decision;
  }

  /** Checks the backup's answer to a registration (every probe). */
  async checkSecondary(
    answer: SecondaryRegistered | void,
  ): Promise<GenerationDecision | undefined> {
    if (!answer || answer.generation === undefined || answer.writerGeneration === undefined) {
      return undefined;
    }
    const decision = checkGenerations(this.volume, this.#recorded(this.#markSeqSeen), {
      kind: "secondary",
      generation: answer.generation,
      writerGeneration: answer.writerGeneration,
    });
    await this.#apply(decision, true);
    return decision;
  }

  /**
   * The backup adopted this primary as the secondary's writer (`--discard-secondary`): the split
   * brain is resolved in this primary's favour, the secondary is paired again, and only a checksum
   * resync can make it trusted.
   */
  async adoptedSecondary(answer: SecondaryRegistered | void): Promise<void> {
    const generation = answer ? answer.generation : undefined;
    if (answer && answer.writerGeneration !== this.primaryGeneration) {
      throw new Error(
        `The backup did not adopt primary generation ${this.primaryGeneration} for volume ` +
          `"${this.volume}" (its writer is ${answer.writerGeneration})`,
      );
    }
    const reason = `split brain resolved by discarding the secondary's own writes; ` +
      `a checksum resync makes it equal to this primary (${checksumCommand(this.volume)})`;
    this.#sidecar = {
      ...this.#sidecar,
      secondaryGeneration: generation ?? this.#sidecar.secondaryGeneration,
      trust: "checksum-resync-needed",
      trustReason: reason,
      trustSince: this.now(),
    };
    emit({
      service: "host",
      level: "warn",
      kind: "trust.change",
      volume: this.volume,
      message: `volume "${this.volume}": ${reason}`,
      data: { trust: "checksum-resync-needed" },
    });
    await this.#persist();
  }

  /**
   * How many losses (record lost, secondary replaced, split brain) were noticed so far; a checksum
   * resync takes it when it starts and hands it to `markTrusted`.
   */
  get lossCount(): number {
    return this.#losses;
  }

  /**
   * A checksum resync made primary and secondary equal: the volume is trusted again. With
   * `lossCountAtStart` (`lossCount` when that resync started), a loss noticed while it ran keeps
   * the volume untrusted (the resync may have compared against a record since replaced): resolves
   * false then.
   */
  async markTrusted(lossCountAtStart?: number): Promise<boolean> {
    if (this.#sidecar.trust === "split-brain") {
      throw new Error(
        `Volume "${this.volume}" is in split brain; resolve it first: ` +
          discardSecondaryCommand(this.volume),
      );
    }
    if (lossCountAtStart !== undefined && lossCountAtStart !== this.#losses) {
      logLine(
        "host",
        "warn",
        `volume "${this.volume}" stays ${this.#sidecar.trust}: a loss was noticed while ` +
          `the checksum resync ran; run it again (${checksumCommand(this.volume)})`,
      );
      return false;
    }
    if (this.#sidecar.trust === "trusted") return true;
    this.#sidecar = {
      ...this.#sidecar,
      trust: "trusted",
      trustReason: null,
      trustSince: this.now(),
    };
    emit({
      service: "host",
      kind: "trust.change",
      volume: this.volume,
      message: `volume "${this.volume}" is trusted again (checksum resync done)`,
      data: { trust: "trusted" },
    });
    await this.#persist();
    return true;
  }

  /** Why a plain (bitmap) resync must not run, or null when it may. */
  plainResyncRefusal(): string | null {
    const { trust, trustReason } = this.#sidecar;
    if (trust === "split-brain") {
      return `Volume "${this.volume}" is in split brain, nothing is resynced automatically: ` +
        `${trustReason}`;
    }
    if (trust === "checksum-resync-needed") {
      return `Volume "${this.volume}" needs a checksum resync (--checksum), not a plain one: ` +
        `${trustReason}`;
    }
    return null;
  }

  #recorded(markSeq: number) {
    const s = this.#sidecar;
    return {
      primaryGeneration: s.primaryGeneration,
      trackerGeneration: s.trackerGeneration,
      markSeq,
      secondaryGeneration: s.secondaryGeneration,
    };
  }

  async #apply(decision: GenerationDecision, persist: boolean): Promise<void> {
    const before = this.#sidecar;
    const trust = nextTrust(before.trust, decision.outcome);
    const { recorded } = decision;
    const lost = decision.outcome === "record-lost" || decision.outcome === "split-brain";
    if (
      decision.outcome === "record-lost" || decision.outcome === "bitmap" ||
      decision.outcome === "in-sync"
    ) {
      // The answer's sequence is the new floor (an older copy's is lower: adopt it, so the next
      // answers are compared with the record as it is now).
      this.#markSeqSeen = lost ? recorded.markSeq : Math.max(this.#markSeqSeen, recorded.markSeq);
    }
    this.#sidecar = {
      ...before,
      trackerGeneration: recorded.trackerGeneration,
      secondaryGeneration: recorded.secondaryGeneration,
      markSeq: this.#markSeqSeen,
      ...(trust !== before.trust || lost
        ? {
          trust,
          trustReason: trust === before.trust && before.trustReason
            ? before.trustReason
            : `${decision.reason}; ${this.#remedy(trust)}`,
          trustSince: trust === before.trust ? before.trustSince : this.now(),
        }
        : {}),
    };
    if (before.trackerGeneration !== recorded.trackerGeneration) {
      this.#adoptedMarkSeq = recorded.markSeq;
    } else if (decision.outcome === "record-lost") {
      this.#adoptedMarkSeq = Math.min(this.#adoptedMarkSeq, recorded.markSeq);
    }
    if (lost) {
      this.#losses++;
      for (const c of this.caches) c.forgetAll();
      this.#warn(decision.reason ?? decision.outcome);
    }
    const changed = lost || before.trackerGeneration !== recorded.trackerGeneration ||
      before.secondaryGeneration !== recorded.secondaryGeneration;
    if (changed || (persist && this.#persistedMarkSeq !== this.#markSeqSeen)) {
      // A failed write is logged (#persist) and not thrown: the decision already holds in memory,
      // and after a restart the unchanged sidecar leads to the same decision again.
      await this.#persist().catch(() => {});
    }
  }

  /** What the operator runs for `trust`, for the status document's reason. */
  #remedy(trust: Trust): string {
    return trust === "split-brain"
      ? `to keep this primary and discard the secondary's own writes run ` +
        discardSecondaryCommand(this.volume)
      : `repair with ${checksumCommand(this.volume)}`;
  }

  #warn(found: string): void {
    const what = this.#sidecar.trust === "split-brain"
      ? `SPLIT BRAIN: mirroring of this volume stopped, writes are marked at the tracker; ` +
        `nothing is resynced automatically; to keep this primary run ` +
        discardSecondaryCommand(this.volume)
      : `CHECKSUM RESYNC NEEDED: the marked-region cache was dropped, every later write is ` +
        `marked or journaled; plain reconstruct is refused; run ${checksumCommand(this.volume)}`;
    emit({
      service: "host",
      level: "error",
      kind: "generation.mismatch",
      volume: this.volume,
      message: `volume "${this.volume}": ${found}. ${what}`,
      data: { trust: this.#sidecar.trust },
    });
  }

  /** Writes the sidecar; writes are serialized so an older state never lands after a newer. */
  #persist(): Promise<void> {
    const sidecar = { ...this.#sidecar };
    const next = this.#writes.then(async () => {
      await writeSidecar(this.path, sidecar);
      this.#persistedMarkSeq = sidecar.markSeq;
    });
    this.#writes = next.catch((err) => {
      logLine(
        "host",
        "warn",
        `volume "${this.volume}": could not write generation sidecar "${this.path}": ` +
          (err as Error).message,
      );
    });
    return next;
  }
}
