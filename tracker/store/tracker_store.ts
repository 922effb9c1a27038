/**
 * The one interface the tracker keeps its state behind: the part of Deno KV's API it uses (point
 * reads, snapshot multi-reads, prefix listings, and atomics of sets and deletes guarded by
 * versionstamp checks). A `Deno.Kv` satisfies it as it is, so the embedded default is unchanged;
 * the etcd backend (etcd_store.ts) implements the same calls over etcd's v3 JSON gateway.
 *
 * What differs between backends is described by StoreTraits, not by the calls:
 *   - how much one atomic may hold (Deno KV: 1000 mutations / 800 KiB; etcd: 128 operations /
 *     1.5 MiB per request, src/limits.ts);
 *   - whether other tracker processes may write the same store (`shared`). A shared store is never
 *     trusted to equal what this process remembers: segment caches are off, every batch re-reads
 *     what it changes and every atomic checks the versionstamps of what it read (commit/).
 */

/** An atomic operation: checks, then sets and deletes that land together or not at all. */
export interface StoreAtomic {
  check(...checks: Deno.AtomicCheck[]): StoreAtomic;
  set(key: Deno.KvKey, value: unknown): StoreAtomic;
  delete(key: Deno.KvKey): StoreAtomic;
  commit(): Promise<Deno.KvCommitResult | Deno.KvCommitError>;
}

/** The store calls the tracker makes (a structural subset of `Deno.Kv`). */
export interface TrackerStore {
  get<T = unknown>(key: Deno.KvKey): Promise<Deno.KvEntryMaybe<T>>;
  /** Reads `keys` in one snapshot (at most `StoreTraits.getManyKeysMax` keys). */
  getMany<T extends readonly unknown[]>(
    keys: readonly [...{ [K in keyof T]: Deno.KvKey }],
  ): Promise<{ [K in keyof T]: Deno.KvEntryMaybe<T[K]> }>;
  /** Entries under `selector.prefix` (from `selector.start` when given), in key order. */
  list<T = unknown>(
    selector: Deno.KvListSelector,
    options?: Deno.KvListOptions,
  ): AsyncIterableIterator<Deno.KvEntry<T>>;
  set(key: Deno.KvKey, value: unknown): Promise<Deno.KvCommitResult>;
  atomic(): StoreAtomic;
  /**
   * Optional (shared stores): a text that differs whenever a key under `prefix` was set or
   * deleted since it was last asked, so a summary rebuilt from the store can be reused until then.
   */
  prefixStamp?(prefix: Deno.KvKey): Promise<string>;
}

/** How much one atomic of a store may hold. */
export interface AtomicLimits {
  /** Most sets and deletes in one atomic. */
  mutationsMax: number;
  /** Most versionstamp checks in one atomic (etcd: compares, counted apart from operations). */
  checksMax: number;
  /** Most bytes of keys and values in one atomic, less a margin for estimation. */
  bytesBudget: number;
  /** Most bytes of keys in one atomic, less a margin. */
  keyBytesBudget: number;
  /** Largest value. */
  valueBytesMax: number;
  /** Largest key. */
  keyBytesMax: number;
}

/** What the tracker must know of its store beyond the calls. */
export interface StoreTraits {
  /** Shown in logs: "Deno KV" or "etcd". */
  kind: string;
  /** True when other tracker processes may write the same store (nothing cached is trusted). */
  shared: boolean;
  atomic: AtomicLimits;
}
