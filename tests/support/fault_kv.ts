/**
 * Fault injection for Deno KV: atomic commits fail on demand, before writing anything — what a
 * crash or a KV error between two atomics of one batch looks like to the tracker.
 *
 * One semantics for every test: `faults.failNext(count, { after })` lets the next `after` commits
 * through, fails the `count` commits after them, then lets every commit through again. Reads and
 * everything else are untouched. With no plan set, nothing fails.
 */

/** The plan of which atomic commits fail; shared by a test and the KV it wraps. */
export class CommitFaults {
  #pass = 0;
  #fail = 0;

  /** From now: `after` commits succeed, then `count` fail, then all succeed. */
  failNext(count: number, opts: { after?: number } = {}): void {
    this.#pass = opts.after ?? 0;
    this.#fail = count;
  }

  /** Commits still planned to fail. */
  get pending(): number {
    return this.#fail;
  }

  /** Decides one commit: true when it must fail. */
  takeFailure(): boolean {
    if (this.#pass > 0) {
      this.#pass--;
      return false;
    }
    if (this.#fail > 0) {
      this.#fail--;
      return true;
    }
    return false;
  }
}

/** `kv` whose atomic commits follow `faults`; a failing commit rejects "Injected commit failure". */
export function faultKv(kv: Deno.Kv, faults: CommitFaults): Deno.Kv {
  return new Proxy(kv, {
    get(target, prop) {
      if (prop === "atomic") {
        return () => {
          const op = target.atomic();
          const commit = op.commit.bind(op);
          op.commit = () =>
            faults.takeFailure() ? Promise.reject(new Error("Injected commit failure")) : commit();
          return op;
        };
      }
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}
