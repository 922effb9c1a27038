/**
 * Whether the tracker's store answers, found in the background (README "Trackers on etcd"): a
 * tracker whose etcd lost quorum still answers `/healthz`, and its store calls wait up to
 * `etcdCallDeadlineMs` before a 503. `GET /v1/status` answers at once from the last probe, so
 * `deno task status` and monitors learn "the store does not answer" in one quick call.
 *
 * One probe at a time: a check that outlives `timeoutMs` makes the store not ok at once; while
 * it has not settled (a Deno KV call cannot be aborted) no other is started, and each tick says
 * since when it hangs. The check itself decides what "answers" means: Deno KV, a get of one key;
 * etcd, a linearizable read of one key on every endpoint (etcd_client.ts `checkQuorum`).
 */
import type { Clock } from "../../src/clock.ts";
import { isoTime } from "../../src/iso_time.ts";
import { storeProbeIntervalMs, storeProbeTimeoutMs } from "../../src/limits.ts";
import type { StoreHealth } from "../../src/schemas.ts";
import type { EtcdClient } from "./etcd_client.ts";
import { encodeKey, toBase64 } from "./etcd_codec.ts";
import type { TrackerStore } from "./tracker_store.ts";

/** What one check found: ok, or why not; etcd adds each endpoint. */
export type StoreCheckResult = Pick<StoreHealth, "ok" | "error" | "endpoints">;

/** One check of the store, bounded by `timeoutMs` (it may also ignore it: the probe bounds it). */
export type StoreCheck = (timeoutMs: number) => Promise<StoreCheckResult>;

/** The key the probes read (absent: reading it costs nothing and changes nothing). */
export const storeProbeKey: Deno.KvKey = ["store-probe"];

/** A check of a Deno KV (or any TrackerStore): a get of one key. */
export function kvStoreCheck(store: TrackerStore): StoreCheck {
  return async () => {
    await store.get(storeProbeKey);
    return { ok: true };
  };
}

/**
 * A check of an etcd cluster: every endpoint at once, linearizable. The store is ok when one
 * member answers (it had a quorum behind it); otherwise "no quorum", with each endpoint's error.
 */
export function etcdStoreCheck(client: EtcdClient, namespace: string): StoreCheck {
  const key = toBase64(encodeKey(namespace, storeProbeKey));
  return async (timeoutMs) => {
    const endpoints = await client.checkQuorum(key, timeoutMs);
    const answering = endpoints.filter((e) => e.ok).length;
    if (answering > 0) return { ok: true, endpoints };
    const errors = endpoints.map((e) => `${e.url}: ${e.error}`).join("; ");
    return {
      ok: false,
      error: `no quorum: none of ${endpoints.length} member(s) answers a linearizable read ` +
        `within ${timeoutMs} ms (${errors})`,
      endpoints,
    };
  };
}

export interface StoreProbeOptions {
  /** "kv" or "etcd", as `/v1/status` names it. */
  kind: StoreHealth["kind"];
  check: StoreCheck;
  clock: Clock;
  intervalMs?: number;
  timeoutMs?: number;
  /**
   * Run after a check that found the store ok (the tracker re-reads its volumes for
   * `/v1/status`); waited for at most `timeoutMs`, so a store lost meanwhile cannot stall the probe.
   */
  afterOk?: () => Promise<unknown>;
}

/** Probes the store every `intervalMs` once started; `last` is the latest finding. */
export class StoreProbe {
  readonly kind: StoreHealth["kind"];
  readonly intervalMs: number;
  readonly timeoutMs: number;
  #last: StoreHealth | null = null;
  /** When the check still unsettled started (epoch ms of the clock), null when none is. */
  #hangingSince: number | null = null;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #running = false;

  constructor(private readonly opts: StoreProbeOptions) {
    this.kind = opts.kind;
    this.intervalMs = opts.intervalMs ?? storeProbeIntervalMs;
    this.timeoutMs = opts.timeoutMs ?? storeProbeTimeoutMs;
  }

  /** The latest finding; null before the first probe ended (or when the probe never ran). */
  get last(): StoreHealth | null {
    return this.#last;
  }

  /** Probes now and then every `intervalMs` until `stop`. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    const tick = async () => {
      await this.probeNow();
      if (this.#running) this.#timer = setTimeout(tick, this.intervalMs);
    };
    void tick();
  }

  stop(): void {
    this.#running = false;
    clearTimeout(this.#timer);
  }

  /** One probe: runs the check bounded by `timeoutMs` and records what it found. */
  async probeNow(): Promise<StoreHealth> {
    const now = this.opts.clock.now();
    if (this.#hangingSince !== null) {
      return this.#record(now, {
        ok: false,
        error: `a store check started ${
          Math.round((now - this.#hangingSince) / 1000)
        } s ago has not answered`,
      });
    }
    this.#hangingSince = now;
    const check = this.opts.check(this.timeoutMs).then(
      (result) => result,
      (err): StoreCheckResult => ({ ok: false, error: (err as Error).message }),
    ).finally(() => this.#hangingSince = null);
    // The check may ignore its bound (a Deno KV call cannot be aborted): twice the bound is
    // where the probe stops waiting for it.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<StoreCheckResult>((resolve) => {
      timer = setTimeout(
        () => resolve({ ok: false, error: `no answer within ${2 * this.timeoutMs} ms` }),
        2 * this.timeoutMs,
      );
    });
    const result = await Promise.race([check, late]);
    clearTimeout(timer);
    const health = this.#record(this.opts.clock.now(), result);
    if (health.ok && this.opts.afterOk) await this.#bounded(this.opts.afterOk());
    return health;
  }

  /** Waits for `work` (its failure ignored) at most `timeoutMs`. */
  async #bounded(work: Promise<unknown>): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      work.catch(() => {}),
      new Promise((resolve) => timer = setTimeout(resolve, this.timeoutMs)),
    ]);
    clearTimeout(timer);
  }

  #record(at: number, result: StoreCheckResult): StoreHealth {
    const health: StoreHealth = {
      kind: this.kind,
      ok: result.ok,
      checkedAt: at,
      checkedAtIso: isoTime(at),
      ...(result.error === undefined ? {} : { error: result.error }),
      ...(result.endpoints === undefined ? {} : { endpoints: result.endpoints }),
    };
    this.#last = health;
    return health;
  }
}
