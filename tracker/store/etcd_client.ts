/**
 * A client of etcd's v3 JSON gateway (`POST /v3/kv/range`, `/v3/kv/txn`, …) over `fetch`, with
 * failover: requests go to the endpoint that answered last; on a connection error, a timeout or a
 * 5xx they are tried on the next endpoint, each endpoint at most once per request. When none
 * answers (no quorum: a live member answers 5xx or not at all), the request fails with 503, so the
 * tracker's caller — a host agent marking — fails the write, or tries another tracker.
 *
 * Retrying a txn on another member after a timeout is safe for our txns: each carries compares
 * on the versions it read (a txn that did land makes the retry fail its compares: a conflict, and
 * the batch re-reads), or is a plain put of a registration decided again on retry.
 *
 * Bounds (src/limits.ts): each endpoint gets at most `etcdRequestTimeoutMs`, the whole call at
 * most `etcdCallDeadlineMs`, so a tracker answers 503 before a host's call to it times out even
 * when every member hangs; endpoints the deadline left untried are where the next call starts.
 */
import { unavailable } from "../../src/errors.ts";
import { etcdCallDeadlineMs, etcdRequestTimeoutMs } from "../../src/limits.ts";

export { etcdCallDeadlineMs, etcdRequestTimeoutMs };

/** One endpoint as a quorum check found it. */
export interface EtcdEndpointCheck {
  url: string;
  ok: boolean;
  error?: string;
}

/** What the gateway answers with every response. */
export interface EtcdHeader {
  revision: string;
}

/** A key-value as the gateway returns it (base64 fields, int64 as strings). */
export interface EtcdKv {
  key: string;
  value?: string;
  mod_revision: string;
}

/** Answer of `/v3/kv/range`. */
export interface EtcdRangeResponse {
  header: EtcdHeader;
  kvs?: EtcdKv[];
  more?: boolean;
}

/** Answer of `/v3/kv/txn`. */
export interface EtcdTxnResponse {
  header: EtcdHeader;
  succeeded?: boolean;
  responses?: Array<{ response_range?: EtcdRangeResponse }>;
}

/** An etcd cluster reached through the JSON gateways of its members. */
export class EtcdClient {
  #current = 0;
  /** Requests moved to another endpoint because one did not answer. */
  failovers = 0;

  /** `endpoints`: "HOST:PORT" of each member's client URL (http). */
  constructor(
    readonly endpoints: readonly string[],
    private readonly requestTimeoutMs = etcdRequestTimeoutMs,
    private readonly callDeadlineMs = etcdCallDeadlineMs,
  ) {
    if (endpoints.length === 0) throw new RangeError("An etcd client needs an endpoint");
  }

  /** POSTs `body` to `path` (e.g. "/v3/kv/range") of a member that answers; see the file comment. */
  async call<T>(path: string, body: unknown): Promise<T> {
    const text = JSON.stringify(body);
    const failures: string[] = [];
    const deadline = Date.now() + this.callDeadlineMs;
    let tried = 0;
    for (; tried < this.endpoints.length; tried++) {
      const leftMs = deadline - Date.now();
      if (leftMs <= 0) {
        failures.push(`deadline of ${this.callDeadlineMs} ms reached`);
        break;
      }
      const at = (this.#current + tried) % this.endpoints.length;
      const endpoint = this.endpoints[at];
      const timeoutMs = Math.min(this.requestTimeoutMs, leftMs);
      let res: Response;
      let answer: string;
      try {
        res = await fetch(`http://${endpoint}${path}`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: text,
          signal: AbortSignal.timeout(timeoutMs),
        });
        answer = await res.text();
      } catch (err) {
        failures.push(`${endpoint}: ${whyFailed(err, timeoutMs)}`);
        continue;
      }
      if (res.status >= 500) {
        failures.push(`${endpoint}: ${res.status} ${answer.slice(0, 200)}`);
        continue;
      }
      if (!res.ok) {
        // A refusal of the request itself (too many operations, too large): no member would take it.
        throw new Error(`etcd ${endpoint} refused ${path}: ${res.status} ${answer.slice(0, 300)}`);
      }
      if (at !== this.#current) {
        this.#current = at;
        this.failovers++;
      }
      return JSON.parse(answer) as T;
    }
    // Start the next request with the first member this one did not get to (all tried: the
    // member after the one that answered last).
    this.#current = (this.#current + Math.max(1, tried % this.endpoints.length)) %
      this.endpoints.length;
    throw unavailable(`etcd cluster did not answer ${path}: ${failures.join("; ")}`);
  }

  /**
   * Asks every endpoint at once for a linearizable read of `key` (base64), each bounded by
   * `timeoutMs`: a member answers it only with its cluster's quorum behind it (a member that
   * lost quorum waits for a leader and does not answer in time). For the tracker's store probe.
   */
  checkQuorum(key: string, timeoutMs: number): Promise<EtcdEndpointCheck[]> {
    const body = JSON.stringify({ key, serializable: false, keys_only: true });
    return Promise.all(this.endpoints.map(async (endpoint): Promise<EtcdEndpointCheck> => {
      const url = `http://${endpoint}`;
      try {
        const res = await fetch(`${url}/v3/kv/range`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body,
          signal: AbortSignal.timeout(timeoutMs),
        });
        const answer = await res.text();
        if (res.ok) return { url, ok: true };
        return { url, ok: false, error: `${res.status} ${answer.slice(0, 200)}` };
      } catch (err) {
        return { url, ok: false, error: whyFailed(err, timeoutMs) };
      }
    }));
  }
}

/** Why a fetch failed, in a line ("no answer within 3000 ms" for a timeout). */
function whyFailed(err: unknown, timeoutMs: number): string {
  if (err instanceof DOMException && err.name === "TimeoutError") {
    return `no answer within ${timeoutMs} ms`;
  }
  return (err as Error).message;
}
