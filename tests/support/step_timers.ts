/** Probe timers stepped by hand, so backoff is tested without sleeping. */
import assert from "node:assert/strict";
import type { ProbeTimers } from "../../host/agent/component_status.ts";

/** Timers that only fire when the test says so; records every delay asked for. */
export class StepTimers implements ProbeTimers {
  delays: number[] = [];
  #pending: { id: number; fn: () => void } | undefined;
  #next = 1;
  setTimeout(fn: () => void, delayMs: number): unknown {
    this.delays.push(delayMs);
    this.#pending = { id: this.#next++, fn };
    return this.#pending.id;
  }
  clearTimeout(id: unknown): void {
    if (this.#pending?.id === id) this.#pending = undefined;
  }
  get armed(): boolean {
    return this.#pending !== undefined;
  }
  /** Fires the pending timer. */
  fire(): void {
    const p = this.#pending;
    assert.ok(p, "a probe is scheduled");
    this.#pending = undefined;
    p.fn();
  }
}
