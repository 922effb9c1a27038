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
 */
import { unavailable } from "../../src/errors.ts";

/** Bound on one request to one etcd endpoint, in ms (etcd's own request timeout is 5 s + election). */
export const etcdRequestTimeoutMs = 3000;

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
  ) {
    if (endpoints.length === 0) throw new RangeError("An etcd client needs an endpoint");
  }

  /** POSTs `body` to `path` (e.g. "/v3/kv/range") of a member that answers; see the file comment. */
  async call<T>(path: string, body: unknown): Promise<T> {
    const text = JSON.stringify(body);
    const failures: string[] = [];
    for (let tried = 0; tried < this.endpoints.length; tried++) {
      const at = (this.#current + tried) % this.endpoints.length;
      const endpoint = this.endpoints[at];
      let res: Response;
      try {
        res = await fetch(`http://${endpoint}${path}`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: text,
          signal: AbortSignal.timeout(this.requestTimeoutMs),
        });
      } catch (err) {
        failures.push(`${endpoint}: ${(err as Error).message}`);
        continue;
      }
      const answer = await res.text();
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
    // Start the next request with the member after the one that answered last.
    this.#current = (this.#current + 1) % this.endpoints.length;
    throw unavailable(`etcd cluster did not answer ${path}: ${failures.join("; ")}`);
  }
}
