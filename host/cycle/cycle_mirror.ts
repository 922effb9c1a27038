/**
 * Cycle mode for one volume (issue 10 item 2): the schedule of its freeze-and-copy cycles and
 * their progress. Every `intervalMs` (measured from the previous cycle's start, so a cycle
 * longer than the interval is followed at once) it runs one `CycleRun` when the agent says the
 * volume may be mirrored now (backup online, trusted, promoted, no checksum resync running);
 * otherwise it records why not in `waiting` and looks again at the next tick. The secondary
 * therefore lags the primary by at most about two intervals while the backup is online.
 *
 * The fork layer calls `beforeWrite` for every write of the volume (copy-before-write, under
 * the write's whole regions' lock); outside a cycle it returns at once.
 */
import type { CycleProgress } from "../../src/host_schemas.ts";
import { isoTime } from "../../src/iso_time.ts";
import { CycleRun, type CycleRunDeps, type CycleRunOptions } from "./cycle_run.ts";

/** Default `--cycle-interval`. */
export const cycleIntervalMsDefault = 30_000;
/** Bounds of `--cycle-interval`: below 100 ms a cycle's freeze would hold writes most of the time. */
export const cycleIntervalMsMin = 100;
export const cycleIntervalMsMax = 24 * 3600 * 1000;

export interface CycleMirrorDeps extends CycleRunDeps {
  /** Why a cycle may not run now (null: it may); asked at every tick and by `start`. */
  refusal(): { status: 409 | 503; message: string } | null;
}

/** The timers the schedule uses; tests pass their own to step through it without sleeping. */
export interface CycleTimers {
  setTimeout(fn: () => void, delayMs: number): unknown;
  clearTimeout(id: unknown): void;
}

const globalTimers: CycleTimers = {
  setTimeout: (fn, delayMs) => setTimeout(fn, delayMs),
  clearTimeout: (id) => clearTimeout(id as number),
};

export interface CycleMirrorOptions extends Partial<CycleRunOptions> {
  intervalMs?: number;
  timers?: CycleTimers;
}

/** A refusal to run a cycle now, with the HTTP status the agent answers with. */
export class CycleRefusedError extends Error {
  constructor(readonly status: 409 | 503, message: string) {
    super(message);
  }
}

export class CycleMirror {
  readonly intervalMs: number;
  readonly #runOpts: CycleRunOptions;
  #progress: CycleProgress;
  #current: CycleRun | undefined;
  #running: Promise<CycleProgress> | undefined;
  #timer: unknown;
  readonly #timers: CycleTimers;
  #stopped = true;
  /** A fresh cycle was asked for while one ran: run another right after it. */
  #again = false;

  constructor(private readonly deps: CycleMirrorDeps, opts: CycleMirrorOptions = {}) {
    this.intervalMs = opts.intervalMs ?? cycleIntervalMsDefault;
    this.#timers = opts.timers ?? globalTimers;
    this.#runOpts = {
      chunkBytes: opts.chunkBytes ?? 1024 * 1024,
      concurrency: opts.concurrency ?? 4,
      bytesPerSecMax: opts.bytesPerSecMax ?? 0,
      pageExtentsMax: opts.pageExtentsMax ?? 1024,
    };
    this.#progress = {
      volume: deps.volume,
      state: "idle",
      startedAt: null,
      finishedAt: null,
      regionsTotal: 0,
      regionsDone: 0,
      bytesTotal: 0,
      bytesDone: 0,
      regionsKept: 0,
      bytesPerSec: 0,
      etaSeconds: null,
      error: null,
      cycleSeq: 0,
      intervalMs: this.intervalMs,
      cyclesCommitted: 0,
      lastCommittedAt: null,
      pointInTime: null,
      nextAt: null,
      waiting: null,
      regionsCopiedBeforeWrite: 0,
      freezeMs: 0,
      bytesShippedTotal: 0,
    };
  }

  /** The latest cycle's progress, with its rate and ETA while it runs. */
  get progress(): CycleProgress {
    const p = { ...this.#progress };
    if (p.state === "running" && p.startedAt !== null) {
      const seconds = Math.max(0.001, (this.deps.clock.now() - p.startedAt) / 1000);
      p.bytesPerSec = Math.round(p.bytesDone / seconds);
      const left = Math.max(0, p.bytesTotal - p.bytesDone);
      p.etaSeconds = p.bytesPerSec > 0 ? Math.ceil(left / p.bytesPerSec) : null;
      p.bytesShippedTotal += p.bytesDone; // the running cycle's share so far
    }
    return {
      ...p,
      startedAtIso: isoTime(p.startedAt),
      finishedAtIso: isoTime(p.finishedAt),
      lastCommittedAtIso: isoTime(p.lastCommittedAt),
      pointInTimeIso: isoTime(p.pointInTime),
      nextAtIso: isoTime(p.nextAt),
    };
  }

  get running(): boolean {
    return this.#running !== undefined;
  }

  /** Copy-before-write for a write to `offset`+`length` (its whole regions locked by the caller). */
  beforeWrite(offset: number, length: number): Promise<void> {
    return this.#current?.beforeWrite(offset, length) ?? Promise.resolve();
  }

  /**
   * Runs one cycle now, or joins the one running; with `fresh`, a running cycle is followed at
   * once by another (a resync asked for now must ship what was written before it asked, and the
   * running cycle's freeze may be older). Throws `CycleRefusedError` when the volume may not be
   * mirrored now. Resolves with the last cycle's final progress.
   */
  start(opts: { fresh?: boolean } = {}): Promise<CycleProgress> {
    if (this.#running) {
      if (opts.fresh) this.#again = true;
      return this.#running;
    }
    const refusal = this.deps.refusal();
    if (refusal) throw new CycleRefusedError(refusal.status, refusal.message);
    this.#running = this.#loop().finally(() => {
      this.#current = undefined;
      this.#running = undefined;
    });
    return this.#running;
  }

  async #loop(): Promise<CycleProgress> {
    let last = await this.#run();
    while (this.#again && !this.deps.refusal()) {
      this.#again = false;
      last = await this.#run();
    }
    this.#again = false;
    return last;
  }

  /** Starts the schedule: the first cycle one interval from now. */
  startSchedule(): void {
    this.#stopped = false;
    this.#schedule(this.deps.clock.now() + this.intervalMs);
  }

  /** Stops the schedule (a running cycle ends on its own). */
  stop(): void {
    this.#stopped = true;
    if (this.#timer !== undefined) this.#timers.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#progress.nextAt = null;
  }

  #schedule(at: number): void {
    if (this.#stopped) return;
    if (this.#timer !== undefined) this.#timers.clearTimeout(this.#timer);
    this.#progress.nextAt = at;
    this.#timer = this.#timers.setTimeout(
      () => void this.#tick(),
      Math.max(0, at - this.deps.clock.now()),
    );
  }

  async #tick(): Promise<void> {
    this.#timer = undefined;
    const startedAt = this.deps.clock.now();
    if (!this.#running) {
      try {
        const run = this.start();
        this.#progress.waiting = null;
        await run;
      } catch (err) {
        this.#progress.waiting = (err as Error).message;
      }
    } else {
      await this.#running.catch(() => {});
    }
    this.#schedule(Math.max(this.deps.clock.now(), startedAt + this.intervalMs));
  }

  async #run(): Promise<CycleProgress> {
    const prev = this.#progress;
    const p: CycleProgress = this.#progress = {
      ...prev,
      state: "running",
      startedAt: this.deps.clock.now(),
      finishedAt: null,
      regionsTotal: 0,
      regionsDone: 0,
      bytesTotal: 0,
      bytesDone: 0,
      regionsKept: 0,
      bytesPerSec: 0,
      etaSeconds: null,
      error: null,
      cycle: undefined,
      cycleSeq: prev.cycleSeq + 1,
      regionsCopiedBeforeWrite: 0,
      freezeMs: 0,
    };
    // Visible to the fork layer before the freeze takes its lock (see CycleRun.freeze).
    const run = this.#current = new CycleRun(this.deps, this.#runOpts, p);
    try {
      if ((await run.freeze()) > 0) {
        await run.begin();
        await run.walk();
        await run.commit();
        p.cyclesCommitted++;
        p.lastCommittedAt = this.deps.clock.now();
        p.pointInTime = run.frozenAt;
        await run.clear();
      } else {
        // Nothing was marked at the freeze: the secondary already holds the primary as of it.
        p.pointInTime = run.frozenAt;
      }
      p.state = "done";
    } catch (err) {
      if (p.cycle !== "committed") run.abandon(err);
      p.state = "failed";
      p.error = err instanceof Error ? err.message : String(err);
    }
    p.bytesShippedTotal = prev.bytesShippedTotal + p.bytesDone;
    p.finishedAt = this.deps.clock.now();
    const seconds = Math.max(0.001, (p.finishedAt - p.startedAt!) / 1000);
    p.bytesPerSec = Math.round(p.bytesDone / seconds);
    p.etaSeconds = p.state === "done" ? 0 : null;
    return { ...p };
  }
}
