/**
 * Packs groups of KV mutations into as few `store.atomic()` commits as the store's limits allow
 * (Deno KV's below by default; etcd's in tracker/store/etcd_traits.ts). A group (e.g. a segment's
 * bitmap and mark record) always lands in one atomic; groups are committed in the order they were
 * added, so an earlier group is never newer on disk than a later.
 *
 * On a shared store (several trackers, tracker/store/tracker_store.ts) the writer is given a
 * ReadSet: every key an atomic writes is checked against the versionstamp it had when the batch
 * read it (absent when it was never read, i.e. assumed clean), and a group may name more keys to
 * check with it (its volume's mark sequence: still the one this batch read, or wrote). A failed
 * check throws StoreConflict; nothing of that atomic landed.
 *
 * Deno KV's limits (ext/kv): key ≤ 2 KiB, value ≤ 64 KiB, ≤ 1000 mutations, ≤ 800 KiB of keys and
 * values together and ≤ 80 KiB of keys per atomic. Key and value sizes are estimated from their
 * encoding (a string part: its UTF-8 bytes + 2; a number part: 9 bytes; a Uint8Array value: its
 * bytes; a number value: ≤ 16 bytes of V8 serialization), and the budgets below keep a margin.
 */
import assert from "node:assert/strict";
import type { AtomicLimits, TrackerStore } from "../store/tracker_store.ts";
import { keyText, type ReadSet, StoreConflict } from "../store/read_set.ts";

/** Deno KV: most mutations in one atomic. */
export const kvAtomicMutationsMax = 1000;
/** Deno KV: most bytes of keys and values in one atomic. */
export const kvAtomicBytesMax = 800 * 1024;
/** Deno KV: most bytes of keys in one atomic. */
export const kvAtomicKeyBytesMax = 80 * 1024;
/** Deno KV: largest value. */
export const kvValueBytesMax = 64 * 1024;
/** Deno KV: largest key. */
export const kvKeyBytesMax = 2 * 1024;

/** Deno KV: most checks in one atomic. */
export const kvAtomicChecksMax = 100;

/** Our budgets per atomic: the limits less a margin for estimation error. */
export const atomicMutationsBudget = kvAtomicMutationsMax;
export const atomicBytesBudget = kvAtomicBytesMax - 16 * 1024;
export const atomicKeyBytesBudget = kvAtomicKeyBytesMax - 4 * 1024;

/** Deno KV's atomic limits, as budgets. */
export const denoKvAtomicLimits: AtomicLimits = {
  mutationsMax: atomicMutationsBudget,
  checksMax: kvAtomicChecksMax,
  bytesBudget: atomicBytesBudget,
  keyBytesBudget: atomicKeyBytesBudget,
  valueBytesMax: kvValueBytesMax,
  keyBytesMax: kvKeyBytesMax,
};

/** One mutation: a set when `value` is given, else a delete. */
export interface Mutation {
  key: Deno.KvKey;
  value?: Uint8Array | number;
}

const encoder = new TextEncoder();

/** Estimated encoded size of a key (an upper bound for the key parts we use). */
export function keyBytes(key: Deno.KvKey): number {
  let n = 0;
  for (const part of key) {
    if (typeof part === "string") n += encoder.encode(part).length + 2;
    else if (typeof part === "number") n += 9;
    else {throw new TypeError(
        `Key part ${String(part)} of a tracker key must be a string or number`,
      );}
  }
  return n;
}

/** Estimated stored size of a value. */
export function valueBytes(value: Uint8Array | number | undefined): number {
  if (value === undefined) return 0;
  return typeof value === "number" ? 16 : value.byteLength;
}

/** Accumulates mutation groups and commits them in chunks that fit one atomic each. */
export class AtomicWriter {
  #mutations: Mutation[] = [];
  /** Keys checked (not written) by the pending atomic, by keyText. */
  #pins = new Map<string, Deno.KvKey>();
  #afterCommit: Array<() => void> = [];
  #bytes = 0;
  #keyBytes = 0;
  /** Atomics committed by this writer. */
  atomics = 0;

  /** `reads`, on a shared store only: the versionstamps the batch read (see the file comment). */
  constructor(
    private readonly kv: TrackerStore,
    private readonly onAtomic?: () => void,
    private readonly limits: AtomicLimits = denoKvAtomicLimits,
    private readonly reads?: ReadSet,
  ) {}

  /**
   * Adds a group that must be committed in one atomic; commits what is pending first when the
   * group would not fit. `afterCommit` runs right after the group's atomic succeeded. `pins`
   * (shared store): keys the group's atomic also checks, at the versionstamp recorded when it is
   * sent.
   */
  async add(
    group: readonly Mutation[],
    afterCommit?: () => void,
    pins: readonly Deno.KvKey[] = [],
  ): Promise<void> {
    const lim = this.limits;
    // Each written key is checked on a shared store: one check per mutation, plus the pins.
    const checksOf = (n: number, p: number) => this.reads ? n + p : 0;
    let bytes = 0;
    let keys = 0;
    for (const m of group) {
      const k = keyBytes(m.key);
      const v = valueBytes(m.value);
      if (k > lim.keyBytesMax || v > lim.valueBytesMax) {
        throw new RangeError(
          `Key ${JSON.stringify(m.key)} (${k} B) or its value (${v} B) is too large`,
        );
      }
      // A checked key travels twice (check and write).
      keys += this.reads ? 2 * k : k;
      bytes += (this.reads ? 2 * k : k) + v;
    }
    if (
      group.length > lim.mutationsMax || checksOf(group.length, pins.length) > lim.checksMax ||
      bytes > lim.bytesBudget || keys > lim.keyBytesBudget
    ) {
      throw new RangeError(`A group of ${group.length} mutations (${bytes} B) exceeds one atomic`);
    }
    const n = this.#mutations.length + group.length;
    const newPins = this.reads ? pins.filter((k) => !this.#pins.has(keyText(k))).length : 0;
    if (
      n > lim.mutationsMax || checksOf(n, this.#pins.size + newPins) > lim.checksMax ||
      this.#bytes + bytes > lim.bytesBudget || this.#keyBytes + keys > lim.keyBytesBudget
    ) {
      await this.flush();
    }
    this.#mutations.push(...group);
    if (this.reads) { for (const k of pins) this.#pins.set(keyText(k), k); }
    this.#bytes += bytes;
    this.#keyBytes += keys;
    if (afterCommit) this.#afterCommit.push(afterCommit);
  }

  /** Commits whatever is pending as one atomic. */
  async flush(): Promise<void> {
    if (this.#mutations.length === 0) return;
    const op = this.kv.atomic();
    const reads = this.reads;
    if (reads) {
      const keys = new Map(this.#mutations.map((m) => [keyText(m.key), m.key]));
      for (const [text, key] of this.#pins) keys.set(text, key);
      op.check(...[...keys.values()].map((key) => ({ key, versionstamp: reads.version(key) })));
    }
    for (const m of this.#mutations) {
      if (m.value === undefined) op.delete(m.key);
      else op.set(m.key, m.value);
    }
    const written = this.#mutations;
    const after = this.#afterCommit;
    this.#mutations = [];
    this.#pins = new Map();
    this.#afterCommit = [];
    this.#bytes = 0;
    this.#keyBytes = 0;
    const result = await op.commit();
    if (!result.ok) {
      // Only a shared store's atomics carry checks: another tracker changed what we read.
      assert.ok(reads, "atomic without checks reported a failed check");
      throw new StoreConflict(
        `Another tracker changed ${written.map((m) => keyText(m.key)).join(", ")} meanwhile`,
      );
    }
    if (reads) {
      for (const m of written) {
        reads.record(m.key, m.value === undefined ? null : result.versionstamp);
      }
    }
    this.atomics++;
    this.onAtomic?.();
    for (const fn of after) fn();
  }
}
