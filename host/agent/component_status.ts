/**
 * The component status table (seed 001's status data structure on the originating node): whether
 * the backup is online, offline, degraded or being probed, since when, and the last error.
 *
 * Writes consult `isOnline` synchronously; any failure of a mirror write takes the backup out of
 * `online`, and a probe with exponential backoff (`probeIntervalMsMin` .. `probeIntervalMsMax`)
 * brings it back. A failure is `degraded` rather than `offline` when the component answered but
 * cannot take writes (`classify`: the backup's journal is full, or a journal write failed): both
 * stop mirror writes (they go to the tracker) and both are probed, never retried per write; the
 * state only tells the operator which it is, and `lastError` why.
 *
 *   online ──write fails──▶ offline | degraded ──backoff──▶ probe ──ok──▶ online
 *                                    ▲                       │
 *                                    └─probe fails (classify)┘
 *
 * An offline component shows `probing` while a probe runs; a degraded one stays `degraded` (it is
 * known to answer, and stays degraded until a probe proves otherwise), so its status and metric do
 * not flap with every probe.
 */
import type { Clock } from "../../src/clock.ts";
import type { ComponentState, ComponentStatusView } from "../../src/host_schemas.ts";

export type { ComponentState, ComponentStatusView } from "../../src/host_schemas.ts";

/** The timers probes are scheduled with; tests pass their own to step through backoff. */
export interface ProbeTimers {
  setTimeout(fn: () => void, delayMs: number): unknown;
  clearTimeout(id: unknown): void;
}

const globalTimers: ProbeTimers = {
  setTimeout: (fn, delayMs) => setTimeout(fn, delayMs),
  clearTimeout: (id) => clearTimeout(id as number),
};

/** First wait after going offline before probing (the waits double from here). */
export const probeIntervalMsMinDefault = 250;
/** Longest wait between probes unless told otherwise (`--probe-interval-ms-max`). */
export const probeIntervalMsMaxDefault = 5000;

export interface ProbeOptions {
  /** First wait after going offline before probing. */
  probeIntervalMsMin?: number;
  /** Longest wait between probes. */
  probeIntervalMsMax?: number;
  timers?: ProbeTimers;
}

/** Which failed state an error puts the component in (default: every error is `offline`). */
export type FailureClassifier = (err: unknown) => "offline" | "degraded";

/**
 * One component's status. `probe` must resolve when the component is usable again (and may
 * prepare it, e.g. register volumes); it throws when not.
 */
export class ComponentStatus {
  #state: ComponentState;
  #since: number;
  #lastError: string | null = null;
  #lastErrorAt: number | null = null;
  #probes = 0;
  #timer: unknown;
  readonly #timers: ProbeTimers;
  /** Set when a write fails while a probe is in flight: that probe's success does not count. */
  #failedDuringProbe = false;
  #probeInFlight = false;
  /** The error a write failed with while a probe was in flight (it decides the next state). */
  #probeWriteError: unknown;
  #stopped = false;
  #listeners: ((state: ComponentState) => void)[] = [];
  readonly #min: number;
  readonly #max: number;

  constructor(
    readonly name: string,
    private readonly probe: () => Promise<void>,
    private readonly clock: Clock,
    opts: ProbeOptions = {},
    private readonly classify: FailureClassifier = () => "offline",
  ) {
    this.#min = opts.probeIntervalMsMin ?? probeIntervalMsMinDefault;
    this.#max = opts.probeIntervalMsMax ?? probeIntervalMsMaxDefault;
    this.#timers = opts.timers ?? globalTimers;
    this.#state = "probing";
    this.#since = clock.now();
  }

  get state(): ComponentState {
    return this.#state;
  }

  /** True when mirror writes should be sent to this component. */
  get isOnline(): boolean {
    return this.#state === "online";
  }

  /** Calls `fn` on every state change. */
  onChange(fn: (state: ComponentState) => void): void {
    this.#listeners.push(fn);
  }

  /** Starts probing now (used at start-up). */
  start(): void {
    this.#schedule(0);
  }

  /**
   * Records a failure; an online component goes offline (or degraded, as `classify` says) and
   * probing starts.
   */
  markOffline(err: unknown): void {
    this.#lastError = err instanceof Error ? err.message : String(err);
    this.#lastErrorAt = this.clock.now();
    if (this.#probeInFlight) {
      this.#failedDuringProbe = true;
      this.#probeWriteError = err;
    }
    if (this.#state !== "online") return;
    this.#set(this.classify(err));
    this.#schedule(this.#min);
  }

  /** Stops probing for good. */
  stop(): void {
    this.#stopped = true;
    this.#timers.clearTimeout(this.#timer);
  }

  view(): ComponentStatusView {
    return {
      name: this.name,
      state: this.#state,
      since: this.#since,
      lastError: this.#lastError,
      lastErrorAt: this.#lastErrorAt,
      probes: this.#probes,
    };
  }

  #schedule(delayMs: number): void {
    if (this.#stopped) return;
    this.#timers.clearTimeout(this.#timer);
    this.#timer = this.#timers.setTimeout(() => void this.#runProbe(delayMs), delayMs);
  }

  async #runProbe(lastDelayMs: number): Promise<void> {
    if (this.#stopped || this.#state === "online") return;
    if (this.#state !== "degraded") this.#set("probing");
    this.#probes++;
    this.#failedDuringProbe = false;
    this.#probeWriteError = undefined;
    this.#probeInFlight = true;
    try {
      await this.probe();
      this.#probeInFlight = false;
      if (this.#stopped || this.isOnline) return;
      // A write failed while the probe ran; its error is newer than the probe's success.
      if (this.#failedDuringProbe) throw new Error(this.#lastError ?? "A write failed");
      this.#set("online");
    } catch (err) {
      this.#probeInFlight = false;
      if (this.#stopped) return;
      if (!this.#failedDuringProbe) {
        this.#lastError = err instanceof Error ? err.message : String(err);
        this.#lastErrorAt = this.clock.now();
      }
      this.#set(this.classify(this.#failedDuringProbe ? this.#probeWriteError : err));
      this.#schedule(Math.min(this.#max, Math.max(this.#min, lastDelayMs * 2)));
    }
  }

  #set(state: ComponentState): void {
    if (this.#state === state) return;
    this.#state = state;
    this.#since = this.clock.now();
    for (const fn of this.#listeners) fn(state);
  }
}
