/**
 * What a tracker on a shared store (several trackers over one etcd cluster) reads instead of
 * trusting memory: each batch's mark sequences, a registration decided on the record as stored,
 * and summaries reused only while the store's stamp of their prefix is unchanged.
 */
import { conflict } from "../src/errors.ts";
import { seqKey, volumeKey, type VolumeRecord, volumesPrefix } from "./kv_layout.ts";
import { decideRegistration, type Registration } from "./registration.ts";
import { type ReadSet, StoreConflict } from "./store/read_set.ts";
import type { TrackerStore } from "./store/tracker_store.ts";
import type { VolumeState } from "./volume_state.ts";

/** Mark sequences read per snapshot when a batch refreshes them (Deno KV's getMany bound). */
const seqReadsMax = 10;

/**
 * Re-reads the mark sequence of each named volume (in snapshots, recorded in `reads` so the
 * batch's atomics check them) and drops its summaries, rebuilt when the batch needs them.
 */
export async function refreshSequences(
  kv: TrackerStore,
  volumes: ReadonlyMap<string, VolumeState>,
  names: readonly string[],
  reads: ReadSet,
): Promise<void> {
  const groups: string[][] = [];
  for (let i = 0; i < names.length; i += seqReadsMax) groups.push(names.slice(i, i + seqReadsMax));
  await Promise.all(groups.map(async (group) => {
    const entries = await kv.getMany<number[]>(group.map(seqKey));
    entries.forEach((e, j) => {
      reads.record(e.key, e.versionstamp);
      const v = volumes.get(group[j])!;
      v.seq = e.value ?? 0;
      v.summary = null;
      v.activity = null;
    });
  }));
}

/** What a registration on a shared store needs besides the request. */
export interface SharedRegistration {
  now: number;
  newGeneration: () => string;
  volumesMax: number;
  /** Keeps a record read from or written to the store in memory. */
  remember(record: VolumeRecord): void;
}

/**
 * One attempt of a registration on a shared store: decided on the record as stored now, written
 * only if nobody changed it meanwhile (StoreConflict otherwise: another tracker registered or
 * renewed the volume at once). A new name counts every tracker's volumes against `volumesMax`.
 */
export async function registerOnce(
  kv: TrackerStore,
  name: string,
  reg: Registration,
  opts: SharedRegistration,
): Promise<VolumeRecord> {
  const stored = await kv.get<VolumeRecord>(volumeKey(name));
  const record = decideRegistration(
    stored.value ?? undefined,
    name,
    reg,
    opts.now,
    opts.newGeneration,
  );
  if (!stored.value) {
    let n = 0;
    for await (const e of kv.list<VolumeRecord>({ prefix: volumesPrefix })) {
      opts.remember(e.value);
      n++;
    }
    if (n >= opts.volumesMax) {
      throw conflict(
        `Cannot register volume "${name}": ${opts.volumesMax} volumes already registered`,
      );
    }
  }
  const result = await kv.atomic()
    .check({ key: volumeKey(name), versionstamp: stored.versionstamp })
    .set(volumeKey(name), record)
    .commit();
  if (!result.ok) throw new StoreConflict(`Volume "${name}" was registered meanwhile`);
  return record;
}

/**
 * Summaries rebuilt from a shared store, each kept with the store's stamp of its prefix at the
 * time (TrackerStore.prefixStamp: it moves with every set or delete under the prefix) and reused
 * while that stamp holds. The stamp is taken before the load, so a change racing the load only
 * makes the next call reload. Commits update the summary they are given in place, so callers get
 * a copy: what is kept stays exactly what the store held at its stamp. Memory: one summary per
 * volume and kind, as the single-writer tracker keeps in its VolumeStates.
 */
export class StampedSummaries {
  readonly #kept = new Map<string, { stamp: string; summary: unknown }>();

  constructor(private readonly kv: TrackerStore) {}

  /** `load()`, or a copy of what it gave last time when nothing under `prefix` changed since. */
  async get<T>(slot: string, prefix: Deno.KvKey, load: () => Promise<T>): Promise<T> {
    if (!this.kv.prefixStamp) return await load();
    const stamp = await this.kv.prefixStamp(prefix);
    const known = this.#kept.get(slot);
    if (known?.stamp === stamp) return structuredClone(known.summary as T);
    const summary = await load();
    this.#kept.set(slot, { stamp, summary });
    return structuredClone(summary);
  }
}
