/**
 * What a commit batch read from a shared store, and at which versionstamps: the checks its
 * atomics carry so that nothing another tracker wrote in between is overwritten (optimistic
 * concurrency; etcd's compare on mod revision). A key never read counts as read absent: the batch
 * assumed it clean.
 */

/** An atomic's check failed: another writer changed a key the batch read; retry from a re-read. */
export class StoreConflict extends Error {
  override name = "StoreConflict";
}

/** A key as text, for maps and messages. */
export function keyText(key: Deno.KvKey): string {
  return JSON.stringify(key);
}

/** Versionstamps read (or written) by one batch: what its atomics check. */
export class ReadSet {
  readonly #versions = new Map<string, string | null>();

  /** Records that `key` was read (or written by this batch) at `versionstamp` (null: absent). */
  record(key: Deno.KvKey, versionstamp: string | null): void {
    this.#versions.set(keyText(key), versionstamp);
  }

  /** The versionstamp `key` had when read; null when absent or never read. */
  version(key: Deno.KvKey): string | null {
    return this.#versions.get(keyText(key)) ?? null;
  }
}
