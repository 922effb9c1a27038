/**
 * Calls to one of several equivalent services (issue 12: several trackers over one store): a call
 * goes to the current target; when that one gives no answer (refused, reset, timed out) or a 5xx,
 * the same call goes to the next one, and the first target that answers becomes the current one
 * and stays so until it fails in turn. A 4xx is an answer: it is returned to the caller at once,
 * never retried elsewhere (another target would give the same answer from the same state).
 *
 * Bounds: one call tries each target at most once, in list order from the current one, so a call
 * fails after at most `targets × the per-request timeout` (src/http_client.ts), and only when no
 * target answered. Which calls are safe to send again after an ambiguous failure (the first target
 * may have committed them) is the caller's to say: see tracker/client.ts.
 */
import type { Clock } from "./clock.ts";
import { ServiceCallError } from "./http_client.ts";

/** Most targets one list may name (`--tracker URL,...`): each costs a timeout in the worst case. */
export const failoverTargetsMax = 16;

/** One target as the calls found it. */
export interface TargetView {
  url: string;
  /** The one calls go to now. */
  current: boolean;
  /** `probing` until a call or probe reached it; then as the last one found it. */
  state: "online" | "offline" | "probing";
  /** Since when it is in that state (epoch ms). */
  since: number;
  lastError: string | null;
  lastErrorAt: number | null;
  /** Calls and probes that got no answer from it. */
  failures: number;
}

/** True when `err` means the target did not answer (no answer, timeout, 5xx): try the next one. */
export function isNoAnswer(err: unknown): boolean {
  return err instanceof ServiceCallError && err.offline;
}

/** The targets of one kind of service, the current one, and each one's reachability. */
export class FailoverTargets {
  readonly urls: readonly string[];
  readonly #views: TargetView[];
  #current = 0;
  /** Times the current target changed (a failover). */
  switches = 0;

  constructor(urls: readonly string[], private readonly clock: Clock = { now: Date.now }) {
    if (urls.length === 0) throw new RangeError("A failover list needs at least one URL");
    if (urls.length > failoverTargetsMax) {
      throw new RangeError(
        `A failover list of ${urls.length} URLs is longer than failoverTargetsMax ${failoverTargetsMax}`,
      );
    }
    this.urls = [...urls];
    const now = clock.now();
    this.#views = this.urls.map((url) => ({
      url,
      current: false,
      state: "probing",
      since: now,
      lastError: null,
      lastErrorAt: null,
      failures: 0,
    }));
  }

  /** The URL calls go to now. */
  get current(): string {
    return this.urls[this.#current];
  }

  /**
   * Runs `attempt` against the current target, then each next one while they give no answer; the
   * one that answers (2xx or 4xx) becomes current. Throws the last no-answer error when none did,
   * and any other error (a 4xx, a bug) at once.
   */
  async run<T>(attempt: (url: string) => Promise<T>): Promise<T> {
    const start = this.#current;
    let last: unknown;
    for (let i = 0; i < this.urls.length; i++) {
      const index = (start + i) % this.urls.length;
      try {
        const answer = await attempt(this.urls[index]);
        this.#answered(index);
        return answer;
      } catch (err) {
        if (!isNoAnswer(err)) {
          if (err instanceof ServiceCallError) this.#answered(index);
          throw err;
        }
        this.#failed(index, err);
        last = err;
      }
    }
    throw last;
  }

  /**
   * Asks every target `check` (a health check) concurrently and records what each answered,
   * without changing the current one: reachability of the standbys for a status.
   */
  async probe(check: (url: string) => Promise<unknown>): Promise<void> {
    await Promise.all(this.urls.map(async (url, index) => {
      try {
        await check(url);
        this.#mark(index, "online");
      } catch (err) {
        if (isNoAnswer(err)) this.#failed(index, err);
        else if (err instanceof ServiceCallError) this.#mark(index, "online");
        else throw err;
      }
    }));
  }

  /** Every target, in list order, with which one is current. */
  view(): TargetView[] {
    return this.#views.map((v, i) => ({ ...v, current: i === this.#current }));
  }

  #answered(index: number): void {
    this.#mark(index, "online");
    // Concurrent calls may each have found a different target answering; the last one wins,
    // and every later call starts there.
    if (index !== this.#current) {
      this.#current = index;
      this.switches++;
    }
  }

  #failed(index: number, err: unknown): void {
    const v = this.#views[index];
    v.lastError = (err as Error).message;
    v.lastErrorAt = this.clock.now();
    v.failures++;
    this.#mark(index, "offline");
  }

  #mark(index: number, state: TargetView["state"]): void {
    const v = this.#views[index];
    if (v.state === state) return;
    v.state = state;
    v.since = this.clock.now();
  }
}
