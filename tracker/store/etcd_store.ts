/**
 * The tracker's store on an etcd cluster (etcd ≥ 3.4, its v3 JSON gateway; etcd_client.ts):
 * the TrackerStore calls mapped onto etcd's range and txn.
 *
 *   get             → range of one key
 *   getMany         → one txn of ranges (a txn reads one revision: a snapshot)
 *   list            → ranges over the prefix, pages of `etcdListPageMax`, all at the revision of
 *                     the first page (a snapshot, as Deno KV's list is)
 *   atomic().commit → one txn: a compare per check (mod_revision equal; 0 = absent), then the
 *                     puts and deletes; `succeeded: false` is a failed check
 *   versionstamp    → the key's mod_revision (a commit's: the txn's revision)
 *
 * Keys and values: etcd_codec.ts. Bounds per txn: src/limits.ts (etcdTxnOpsMax,
 * etcdRequestBytesMax); the tracker's AtomicWriter keeps within them (etcdTraits).
 */
import {
  etcdGetManyKeysMax,
  etcdRequestBytesMargin,
  etcdRequestBytesMax,
  etcdTxnOpsMax,
} from "../../src/limits.ts";
import {
  decodeKey,
  decodeValue,
  encodeKey,
  encodeValue,
  fromBase64,
  prefixEnd,
  toBase64,
} from "./etcd_codec.ts";
import type { EtcdClient, EtcdKv, EtcdRangeResponse, EtcdTxnResponse } from "./etcd_client.ts";
import type { StoreAtomic, StoreTraits, TrackerStore } from "./tracker_store.ts";

/** Keys one page of a listing reads. */
export const etcdListPageMax = 256;
/**
 * Largest key the tracker writes to etcd (etcd itself bounds keys only by the request size); the
 * same 2 KiB as Deno KV, so a key valid on one backend is valid on the other.
 */
export const etcdKeyBytesMax = 2 * 1024;
/** Namespace of the tracker's keys when the `--kv` URL names none. */
export const etcdNamespaceDefault = "trackmirror/";

/** What the tracker must know of an etcd store: shared, and etcd's txn bounds. */
export const etcdTraits: StoreTraits = {
  kind: "etcd",
  shared: true,
  atomic: {
    mutationsMax: etcdTxnOpsMax,
    checksMax: etcdTxnOpsMax,
    bytesBudget: etcdRequestBytesMax - etcdRequestBytesMargin,
    keyBytesBudget: etcdRequestBytesMax - etcdRequestBytesMargin,
    valueBytesMax: etcdRequestBytesMax - etcdRequestBytesMargin,
    keyBytesMax: etcdKeyBytesMax,
  },
};

type Op =
  | { request_put: { key: string; value: string } }
  | { request_delete_range: { key: string } };

/** TrackerStore over etcd; see the file comment. */
export class EtcdStore implements TrackerStore {
  constructor(readonly client: EtcdClient, readonly namespace = etcdNamespaceDefault) {}

  #key(key: Deno.KvKey): string {
    return toBase64(encodeKey(this.namespace, key));
  }

  #entry<T>(key: Deno.KvKey, kv: EtcdKv | undefined): Deno.KvEntryMaybe<T> {
    if (!kv) return { key, value: null, versionstamp: null };
    return {
      key,
      value: decodeValue(fromBase64(kv.value ?? "")) as T,
      versionstamp: kv.mod_revision,
    };
  }

  async get<T = unknown>(key: Deno.KvKey): Promise<Deno.KvEntryMaybe<T>> {
    const res = await this.client.call<EtcdRangeResponse>("/v3/kv/range", { key: this.#key(key) });
    return this.#entry<T>(key, res.kvs?.[0]);
  }

  async getMany<T extends readonly unknown[]>(
    keys: readonly [...{ [K in keyof T]: Deno.KvKey }],
  ): Promise<{ [K in keyof T]: Deno.KvEntryMaybe<T[K]> }> {
    if (keys.length > etcdGetManyKeysMax) {
      throw new RangeError(`getMany of ${keys.length} keys exceeds ${etcdGetManyKeysMax}`);
    }
    const res = await this.client.call<EtcdTxnResponse>("/v3/kv/txn", {
      success: keys.map((k) => ({ request_range: { key: this.#key(k) } })),
    });
    const responses = res.responses ?? [];
    return keys.map((k, i) => this.#entry(k, responses[i]?.response_range?.kvs?.[0])) as {
      [K in keyof T]: Deno.KvEntryMaybe<T[K]>;
    };
  }

  async *list<T = unknown>(
    selector: Deno.KvListSelector,
    options: Deno.KvListOptions = {},
  ): AsyncIterableIterator<Deno.KvEntry<T>> {
    if (!("prefix" in selector) || "end" in selector || options.reverse) {
      throw new RangeError("The etcd store lists by prefix (and start) only, forwards");
    }
    const prefix = encodeKey(this.namespace, selector.prefix);
    const end = toBase64(prefixEnd(prefix));
    let from = "start" in selector && selector.start
      ? encodeKey(this.namespace, selector.start)
      : prefix;
    let left = options.limit ?? Infinity;
    let revision: string | undefined;
    while (left > 0) {
      const page = Math.min(left, etcdListPageMax);
      const res: EtcdRangeResponse = await this.client.call("/v3/kv/range", {
        key: toBase64(from),
        range_end: end,
        limit: page,
        ...(revision ? { revision } : {}),
      });
      revision ??= res.header.revision;
      const kvs = res.kvs ?? [];
      for (const kv of kvs) {
        const bytes = fromBase64(kv.key);
        yield {
          key: decodeKey(this.namespace, bytes),
          value: decodeValue(fromBase64(kv.value ?? "")) as T,
          versionstamp: kv.mod_revision,
        };
        from = new Uint8Array([...bytes, 0]); // the next key after this one
      }
      left -= kvs.length;
      if (!res.more || kvs.length === 0) return;
    }
  }

  /**
   * The number of keys under `prefix` and the newest mod revision among them, from one range
   * (keys only, one key, sorted by mod revision). A put raises the newest revision; a delete alone
   * lowers the count; a delete and a put both raise the revision: every change shows.
   */
  async prefixStamp(prefix: Deno.KvKey): Promise<string> {
    const bytes = encodeKey(this.namespace, prefix);
    const res = await this.client.call<EtcdRangeResponse & { count?: string }>("/v3/kv/range", {
      key: toBase64(bytes),
      range_end: toBase64(prefixEnd(bytes)),
      limit: 1,
      sort_order: "DESCEND",
      sort_target: "MOD",
      keys_only: true,
    });
    return `${res.count ?? 0}:${res.kvs?.[0]?.mod_revision ?? 0}`;
  }

  async set(key: Deno.KvKey, value: unknown): Promise<Deno.KvCommitResult> {
    const result = await this.atomic().set(key, value).commit();
    if (!result.ok) throw new Error("An etcd put without compares reported a failed compare");
    return result;
  }

  atomic(): StoreAtomic {
    return new EtcdAtomic(this, (body) => this.client.call<EtcdTxnResponse>("/v3/kv/txn", body));
  }

  /** The base64 etcd key of `key` (for EtcdAtomic). */
  etcdKey(key: Deno.KvKey): string {
    return this.#key(key);
  }
}

/** One txn being built: compares from checks, then puts and deletes. */
class EtcdAtomic implements StoreAtomic {
  readonly #compare: unknown[] = [];
  readonly #ops: Op[] = [];

  constructor(
    private readonly store: EtcdStore,
    private readonly txn: (body: unknown) => Promise<EtcdTxnResponse>,
  ) {}

  check(...checks: Deno.AtomicCheck[]): StoreAtomic {
    for (const c of checks) {
      this.#compare.push({
        key: this.store.etcdKey(c.key),
        target: "MOD",
        result: "EQUAL",
        mod_revision: c.versionstamp ?? "0",
      });
    }
    return this;
  }

  set(key: Deno.KvKey, value: unknown): StoreAtomic {
    this.#ops.push({
      request_put: { key: this.store.etcdKey(key), value: toBase64(encodeValue(value)) },
    });
    return this;
  }

  delete(key: Deno.KvKey): StoreAtomic {
    this.#ops.push({ request_delete_range: { key: this.store.etcdKey(key) } });
    return this;
  }

  async commit(): Promise<Deno.KvCommitResult | Deno.KvCommitError> {
    if (this.#compare.length > etcdTxnOpsMax || this.#ops.length > etcdTxnOpsMax) {
      throw new RangeError(
        `An etcd txn of ${this.#compare.length} compares and ${this.#ops.length} operations ` +
          `exceeds etcdTxnOpsMax ${etcdTxnOpsMax}`,
      );
    }
    const res = await this.txn({ compare: this.#compare, success: this.#ops });
    if (!res.succeeded) return { ok: false };
    return { ok: true, versionstamp: res.header.revision };
  }
}
