/**
 * The command queue shared by the host's two tracker records (dirty marks and activity marks):
 * concurrent requests to mark runs of regions are coalesced into one tracker command (at most
 * `trackExtentsMax` runs, `commandsInflightMax` commands in flight), and each request resolves when
 * its command was acknowledged.
 *
 * Regions the owner drops while a command is in flight (a resync clearing them, a retire) are
 * "voided" for that command: its acknowledgement must not make the owner trust them, because the
 * tracker may have applied the clear after the mark.
 */
import { DirtyBitmap } from "../../src/dirty_bitmap.ts";
import type { RegionRun } from "../../src/extent.ts";
import { trackExtentsMax } from "../../src/schemas.ts";

/** Commands awaiting the tracker's answer at once. */
export const commandsInflightMax = 2;

interface Pending {
  run: RegionRun;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class MarkQueue {
  readonly #queue: Pending[] = [];
  /** For each region in a queued or flying command, that command's promise (to join it). */
  readonly #covering = new Map<number, Promise<void>>();
  readonly #flying = new Set<DirtyBitmap>();
  #inflight = 0;
  /** Commands sent. */
  commandsSent = 0;

  /**
   * `send` carries one command to the tracker; `acknowledged` is told the runs it marked and, to
   * subtract from them, the regions voided while it flew.
   */
  constructor(
    private readonly send: (runs: RegionRun[]) => Promise<unknown>,
    private readonly acknowledged: (runs: RegionRun[], voided: DirtyBitmap) => void,
  ) {}

  /**
   * Resolves once a command marking `run` was acknowledged (and `acknowledged` was called). When
   * commands already queued or in flight cover every region of `run`, it joins them instead of
   * sending another; callers re-check their record afterwards either way (a region may have been
   * voided meanwhile).
   */
  mark(run: RegionRun): Promise<void> {
    const joined = new Set<Promise<void>>();
    for (let r = run.first; r < run.first + run.count; r++) {
      const p = this.#covering.get(r);
      if (!p) {
        joined.clear();
        break;
      }
      joined.add(p);
    }
    if (joined.size > 0) return Promise.all(joined).then(() => {});
    const done = new Promise<void>((resolve, reject) => {
      this.#queue.push({ run, resolve, reject });
    });
    for (let r = run.first; r < run.first + run.count; r++) this.#covering.set(r, done);
    const forget = () => {
      for (let r = run.first; r < run.first + run.count; r++) {
        if (this.#covering.get(r) === done) this.#covering.delete(r);
      }
    };
    done.then(forget, forget);
    this.#pump();
    return done;
  }

  /** Regions dropped by the owner: no command now in flight may make them trusted. */
  void(run: RegionRun): void {
    for (const voided of this.#flying) voided.set(run);
  }

  #pump(): void {
    while (this.#inflight < commandsInflightMax && this.#queue.length > 0) {
      const batch = this.#queue.splice(0, trackExtentsMax);
      this.#inflight++;
      this.#command(batch).finally(() => {
        this.#inflight--;
        this.#pump();
      });
    }
  }

  async #command(batch: Pending[]): Promise<void> {
    const voided = new DirtyBitmap();
    this.#flying.add(voided);
    try {
      this.commandsSent++;
      await this.send(batch.map((p) => p.run));
      this.acknowledged(batch.map((p) => p.run), voided);
      for (const p of batch) p.resolve();
    } catch (err) {
      for (const p of batch) p.reject(err);
    } finally {
      this.#flying.delete(voided);
    }
  }
}
