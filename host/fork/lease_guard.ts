/**
 * One volume's lease as this agent instance holds it, and the `fenced` state it ends in.
 *
 * The tracker hands the lease epoch out at registration; the agent sends it (with its instance)
 * with every change of tracking state and registers it at the backup. When another instance
 * takes the volume over, the tracker and the backup refuse this one with 409 `Volume "NAME" is
 * fenced: ...` (src/fencing.ts). Whichever path brings that refusal first — a mark, an activity
 * mark, a lease renewal, a backup registration or batch — fences the volume here, and from then
 * on every write to it fails before anything is sent or written (the fork layer calls `check`):
 * the agent never acknowledges a write to a primary that is no longer the volume's. It does not
 * resume by itself; the operator stops this agent (or takes the volume back with --takeover).
 */
import { ServiceError } from "../../src/errors.ts";
import { isFencedError } from "../../src/fencing.ts";
import type {
  ActivityRequest,
  ActivityRetireRequest,
  ClearRequest,
  TrackRequest,
} from "../../src/schemas.ts";
import { emit } from "../../src/events.ts";

/** Why and since when a volume is fenced. */
export interface FencedState {
  at: number;
  reason: string;
  /** Who holds the volume now, when known ('host "h1" (instance …, http://…)'). */
  holder?: string;
}

export class LeaseGuard {
  #leaseEpoch: number | undefined;
  /** The highest lease epoch seen elsewhere (the backup's fence), claimed at registration. */
  #seen = 0;
  #fenced: FencedState | null = null;
  readonly #listeners: ((state: FencedState) => void)[] = [];

  /**
   * `instance` is this agent process's random id, `primaryId` what it serves
   * ("HOSTNAME:/real/path"), `now` the clock for `fenced.at`.
   */
  constructor(
    readonly volume: string,
    readonly instance: string,
    readonly primaryId: string,
    private readonly now: () => number,
  ) {}

  /** The lease epoch the tracker granted; undefined before the first registration answered. */
  get leaseEpoch(): number | undefined {
    return this.#leaseEpoch;
  }

  /** Null while this agent holds the volume. */
  get fenced(): FencedState | null {
    return this.#fenced;
  }

  /** Records the lease epoch a registration answered with; never lowers it. */
  granted(leaseEpoch: number | undefined): void {
    if (leaseEpoch === undefined) return;
    this.#leaseEpoch = Math.max(this.#leaseEpoch ?? 0, leaseEpoch);
  }

  /**
   * Records a lease epoch seen outside the tracker (the backup's fence at start): the next
   * registration claims it, so the tracker never answers a lower one. Marks do not carry it.
   */
  saw(leaseEpoch: number | undefined): void {
    if (leaseEpoch !== undefined) this.#seen = Math.max(this.#seen, leaseEpoch);
  }

  /** The lease epoch a registration claims: the highest granted or seen; undefined if none. */
  get registrationClaim(): number | undefined {
    const claim = Math.max(this.#leaseEpoch ?? 0, this.#seen);
    return claim > 0 ? claim : undefined;
  }

  /** Fences the volume for good (the first reason is kept). */
  fence(reason: string): void {
    if (this.#fenced) return;
    this.#fenced = { at: this.now(), reason };
    emit({
      service: "host",
      level: "error",
      kind: "lease.lost",
      volume: this.volume,
      message: `volume "${this.volume}" is FENCED, every later write to it fails: ${reason}`,
      data: { reason },
    });
    for (const listener of this.#listeners) listener(this.#fenced);
  }

  /** Calls `listener` once the volume is fenced (the agent looks up the new holder). */
  onFenced(listener: (state: FencedState) => void): void {
    this.#listeners.push(listener);
  }

  /** Records who holds the volume now, for the refusals that follow. */
  setHolder(holder: string): void {
    if (this.#fenced) this.#fenced.holder = holder;
  }

  /** Fences the volume when `err` is a fencing refusal of it; returns whether it is fenced. */
  noteRefusal(err: unknown): boolean {
    if (!this.#fenced && isFencedError(err, this.volume)) this.fence((err as Error).message);
    return this.#fenced !== null;
  }

  /** Throws 409 naming the reason (and the new holder, when the refusal named it) once fenced. */
  check(what: string): void {
    if (!this.#fenced) return;
    throw new ServiceError(
      409,
      `${what} refused: this host agent no longer holds volume "${this.volume}" ` +
        `(fenced since ${new Date(this.#fenced.at).toISOString()}` +
        (this.#fenced.holder ? `; now held by ${this.#fenced.holder}` : "") +
        `): ${this.#fenced.reason}`,
    );
  }

  /** What tracking-state changes carry: nothing until the tracker granted a lease epoch. */
  claim(): { instance?: string; leaseEpoch?: number } {
    const leaseEpoch = this.#leaseEpoch;
    return leaseEpoch === undefined ? {} : { instance: this.instance, leaseEpoch };
  }
}

/** The tracker calls a volume's layers make (marker, activity record, resync). */
export interface LeasedTrackerPort {
  track(req: TrackRequest): Promise<unknown>;
  activity(req: ActivityRequest): Promise<unknown>;
  retireActivity(volume: string, req: ActivityRetireRequest): Promise<unknown>;
  clear(name: string, req: ClearRequest): Promise<unknown>;
}

/**
 * `tracker` with the guard's claim added to every change of tracking state, and every refusal
 * shown to the guard first (so a fencing refusal on any path fences the volume).
 */
export function leasedTracker<T extends LeasedTrackerPort>(tracker: T, guard: LeaseGuard): T {
  const watched = <R>(p: Promise<R>): Promise<R> =>
    p.catch((err) => {
      guard.noteRefusal(err);
      throw err;
    });
  const wrapped: Record<string, unknown> = {
    track: (req: TrackRequest) => watched(tracker.track({ ...req, ...guard.claim() })),
    activity: (req: ActivityRequest) => watched(tracker.activity({ ...req, ...guard.claim() })),
    retireActivity: (volume: string, req: ActivityRetireRequest) =>
      watched(tracker.retireActivity(volume, { ...req, ...guard.claim() })),
    clear: (name: string, req: ClearRequest) =>
      watched(tracker.clear(name, { ...req, ...guard.claim() })),
  };
  return new Proxy(tracker, {
    get(target, prop) {
      if (typeof prop === "string" && prop in wrapped) return wrapped[prop];
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}
