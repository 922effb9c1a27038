/**
 * The tracker's row of the host's component status table (issue 11: with the tracker stopped and
 * writes failing, the status used to say `tracker: {lastError: null}`, because only lease renewals
 * were counted). Every call the agent makes to the tracker — marks from the write path, activity
 * marks, retires, clears, renewals — goes through `watchTracker`, and its outcome moves the state:
 * an answer (2xx, or a refusal such as 404 / 409: the tracker is there) is `online`; no answer, a
 * timeout or a 5xx is `offline`, with the error kept as `lastError`. Before the first answer the
 * state is `probing`.
 */
import type { Clock } from "../../src/clock.ts";
import type { ComponentState } from "../../src/host_schemas.ts";
import { emit } from "../../src/events.ts";

/** One tracker's health as the host saw it in its calls. */
export class TrackerHealth {
  #state: ComponentState = "probing";
  #since: number;
  #lastError: string | null = null;
  #lastErrorAt: number | null = null;
  #failures = 0;

  constructor(private readonly clock: Clock) {
    this.#since = clock.now();
  }

  get state(): ComponentState {
    return this.#state;
  }

  /** The tracker answered a call. */
  answered(): void {
    this.#set("online");
  }

  /** A call got no answer (or a 5xx); `err` becomes the last error. */
  failed(err: unknown): void {
    this.#lastError = err instanceof Error ? err.message : String(err);
    this.#lastErrorAt = this.clock.now();
    this.#failures++;
    this.#set("offline");
  }

  view(): {
    state: ComponentState;
    since: number;
    lastError: string | null;
    lastErrorAt: number | null;
    failures: number;
  } {
    return {
      state: this.#state,
      since: this.#since,
      lastError: this.#lastError,
      lastErrorAt: this.#lastErrorAt,
      failures: this.#failures,
    };
  }

  #set(state: ComponentState): void {
    if (this.#state === state) return;
    this.#state = state;
    this.#since = this.clock.now();
    emit({
      service: "host",
      level: state === "online" ? "info" : "error",
      kind: `component.${state}`,
      message: `tracker ${state}${state === "online" ? "" : ` (${this.#lastError})`}`,
      data: { component: "tracker", state, error: state === "online" ? null : this.#lastError },
    });
  }
}

/** True when `err` means the tracker did not answer (no answer, timeout, 5xx). */
function isNoAnswer(err: unknown): boolean {
  const status = (err as { status?: unknown }).status;
  return typeof status !== "number" || status === 0 || status >= 500;
}

/**
 * `tracker` with every promise-returning method reporting its outcome to `health`; other members
 * (the async log generator, `baseUrl`) pass through unchanged.
 */
export function watchTracker<T extends object>(tracker: T, health: TrackerHealth): T {
  return new Proxy(tracker, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        const result = value.apply(target, args);
        if (!(result instanceof Promise)) return result;
        return result.then(
          (answer) => {
            health.answered();
            return answer;
          },
          (err) => {
            if (isNoAnswer(err)) health.failed(err);
            else health.answered();
            throw err;
          },
        );
      };
    },
  });
}
