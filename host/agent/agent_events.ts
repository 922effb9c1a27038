/**
 * The host agent's events about its own view of the world (src/events.ts): the backup's state
 * (online, offline, degraded; `probing` is the inside of an outage, not a change), each volume's
 * mode when it follows (mirroring, tracking), and the start, progress, finish or failure of
 * every resync, checksum resync, verify and cycle.
 *
 * The backup's state comes from its ComponentStatus's change listener. The jobs are looked at
 * every `jobPollMs` rather than from inside each job's loop: four job kinds share one progress
 * shape, and their code stays as it is. A job is told apart by its `startedAt`, so one that starts
 * and ends between two looks still gives its start and its end (back to back); progress is told
 * at most every `progressEventMs` or every `progressEventPercent` of its bytes. A start, finish or
 * failure is stamped with the job's own `startedAt` / `finishedAt`, not with the look (up to
 * `jobPollMs` later), so it does not seem to follow what the tracker told meanwhile (a
 * `volume.clean` at the end of a resync); sequence numbers still follow the order of telling.
 */
import { emit } from "../../src/events.ts";
import type { ComponentState } from "../../src/host_schemas.ts";
import type { HostVolume } from "./volume_stack.ts";
import type { ComponentStatus } from "./component_status.ts";

/** How often the jobs' progress is looked at, in ms. */
export const jobPollMs = 500;
/** Least time between two progress events of one job, in ms (unless it moved 10 %). */
export const progressEventMs = 5000;
/** Progress events come at least every this many percent of a job's bytes. */
export const progressEventPercent = 10;

/** The progress fields every job kind shares. */
interface JobProgress {
  state: "idle" | "running" | "done" | "failed";
  startedAt: number | null;
  finishedAt: number | null;
  regionsTotal: number;
  regionsDone: number;
  bytesTotal: number;
  bytesDone: number;
  bytesPerSec?: number;
  etaSeconds?: number | null;
  error: string | null;
}

type JobKind = "resync" | "checksum-resync" | "verify" | "cycle";

/** What was last told of one job of one volume. */
interface Told {
  startedAt: number | null;
  state: JobProgress["state"];
  progressAt: number;
  percent: number;
}

export interface AgentEventsDeps {
  backup: ComponentStatus;
  backupUrl?: string;
  forking: boolean;
  volumes: () => readonly HostVolume[];
  now: () => number;
}

/** Watches the backup's state and the volumes' jobs; `stop` ends the watching. */
export class AgentEvents {
  #backupState: ComponentState | undefined;
  #mode: string | undefined;
  readonly #told = new Map<string, Told>();
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(private readonly deps: AgentEventsDeps) {
    deps.backup.onChange((state) => this.#backupChanged(state));
  }

  /** Starts looking at the jobs (once the agent is open). */
  start(): void {
    this.#timer ??= setInterval(() => this.lookAtJobs(), jobPollMs);
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  #backupChanged(state: ComponentState): void {
    if (state === "probing" || state === this.#backupState) return;
    this.#backupState = state;
    const view = this.deps.backup.view();
    const why = state === "online" ? "" : ` (${view.lastError ?? "no answer"})`;
    emit({
      service: "host",
      level: state === "online" ? "info" : state === "degraded" ? "warn" : "error",
      kind: `component.${state}`,
      message: `backup ${state}${why}`,
      data: {
        component: "backup",
        state,
        ...(this.deps.backupUrl ? { url: this.deps.backupUrl } : {}),
        error: state === "online" ? null : view.lastError,
      },
    });
    const mode = !this.deps.forking
      ? "pass-through"
      : state === "online"
      ? "mirroring"
      : "tracking";
    if (mode === this.#mode) return;
    const from = this.#mode ?? null;
    this.#mode = mode;
    for (const v of this.deps.volumes()) {
      emit({
        service: "host",
        level: mode === "tracking" ? "warn" : "info",
        kind: "mode.change",
        volume: v.name,
        message: `volume "${v.name}": ${from === null ? "" : `${from} -> `}${mode}` +
          (mode === "tracking" ? " (writes are marked at the tracker)" : ""),
        data: { from, to: mode },
      });
    }
  }

  /** Looks at every volume's jobs once (the timer's tick; tests call it directly). */
  lookAtJobs(): void {
    for (const v of this.deps.volumes()) {
      this.#lookAt(v.name, "resync", v.resync.progress);
      this.#lookAt(v.name, "checksum-resync", v.checksumResync.progress);
      this.#lookAt(v.name, "verify", v.verify.progress);
      if (v.cycles) this.#lookAt(v.name, "cycle", v.cycles.progress);
    }
  }

  #lookAt(volume: string, job: JobKind, p: JobProgress): void {
    if (p.startedAt === null) return;
    const key = `${volume}\u0000${job}`;
    const now = this.deps.now();
    let told = this.#told.get(key);
    if (told?.startedAt !== p.startedAt) {
      told = { startedAt: p.startedAt, state: "running", progressAt: now, percent: 0 };
      this.#told.set(key, told);
      emit({
        at: p.startedAt,
        service: "host",
        kind: `${job}.start`,
        volume,
        message: `volume "${volume}": ${job} started (${p.regionsTotal} regions, ` +
          `${p.bytesTotal} bytes)`,
        data: facts(p),
      });
    }
    const percent = p.bytesTotal > 0 ? Math.floor((100 * p.bytesDone) / p.bytesTotal) : 0;
    if (p.state === "running") {
      const due = now - told.progressAt >= progressEventMs ||
        percent >= told.percent + progressEventPercent;
      if (!due) return;
      told.progressAt = now;
      told.percent = percent;
      emit({
        service: "host",
        kind: `${job}.progress`,
        volume,
        message: `volume "${volume}": ${job} ${percent}% (${p.bytesDone}/${p.bytesTotal} bytes` +
          (p.etaSeconds == null ? ")" : `, ETA ${Math.ceil(p.etaSeconds)} s)`),
        data: { ...facts(p), percent },
      });
      return;
    }
    if (p.state === told.state || (p.state !== "done" && p.state !== "failed")) return;
    told.state = p.state;
    const failed = p.state === "failed";
    emit({
      at: p.finishedAt ?? now,
      service: "host",
      level: failed ? "error" : "info",
      kind: `${job}.${failed ? "fail" : "finish"}`,
      volume,
      message: failed
        ? `volume "${volume}": ${job} failed: ${p.error}`
        : `volume "${volume}": ${job} finished (${p.regionsDone} regions, ${p.bytesDone} bytes)`,
      data: facts(p),
    });
  }
}

function facts(p: JobProgress): Record<string, unknown> {
  return {
    state: p.state,
    startedAt: p.startedAt,
    finishedAt: p.finishedAt,
    regionsDone: p.regionsDone,
    regionsTotal: p.regionsTotal,
    bytesDone: p.bytesDone,
    bytesTotal: p.bytesTotal,
    bytesPerSec: p.bytesPerSec ?? null,
    etaSeconds: p.etaSeconds ?? null,
    error: p.error,
  };
}
