/**
 * What checksum resync (checksum_resync.ts) and online verify (online_verify.ts) share: a walk of
 * every region of a volume in chunks, `concurrency` chunks in flight (at a bounded rate:
 * rate_limit.ts); the
 * comparison of one span's primary bytes with the backup's digests of the secondary; and the rate
 * and ETA their progress shows. One place, so the two jobs hash, pace and report the same way.
 */
import type { BlockDevice } from "../../src/block_device.ts";
import type { Clock } from "../../src/clock.ts";
import { type Extent, mergeExtents, type RegionRun, regionsOf } from "../../src/extent.ts";
import type { ResyncState } from "../../src/host_schemas.ts";
import { checksumRegionsMax, checksumSpanBytesMax } from "../../src/limits.ts";
import { type ChecksumRequest, differingRuns, hashRegions } from "../../src/region_checksums.ts";

/** The backup's digests of the secondary's regions (backup/client.ts `checksums`). */
export interface SecondaryChecksums {
  checksums(volume: string, req: ChecksumRequest): Promise<Uint8Array>;
}

/** How a walk is paced (checksum resync and verify take the same options). */
export interface WalkOptions {
  /** Bytes compared per backup request; whole regions, at most checksumRegionsMax of them. */
  chunkBytes?: number;
  /** Chunks in flight at once (2: one hashed while the other waits for the backup). */
  concurrency?: number;
  /** Bound on bytes compared per second, counted from the start (rate_limit.ts); 0 = unbounded. */
  bytesPerSecMax?: number;
}

/** Default bytes compared per backup request: 64 regions of 64 KiB. */
export const checksumChunkBytesDefault = 4 * 1024 * 1024;

/**
 * Bytes per chunk: `wantedBytes` rounded down to whole regions, at least one region and at most
 * what one checksums request may cover (`checksumRegionsMax`, `checksumSpanBytesMax`).
 */
export function chunkBytesOf(regionBytes: number, wantedBytes = checksumChunkBytesDefault): number {
  const wanted = Math.floor(wantedBytes / regionBytes);
  const regionsMax = Math.min(checksumRegionsMax, Math.floor(checksumSpanBytesMax / regionBytes));
  return Math.max(1, Math.min(wanted, regionsMax)) * regionBytes;
}

/** A walk's pacing as `opts` asks for it, defaults filled in and the chunk size bounded. */
export function walkPacing(
  regionBytes: number,
  opts: WalkOptions,
): { chunkBytes: number; concurrency: number; bytesPerSecMax: number } {
  return {
    chunkBytes: chunkBytesOf(regionBytes, opts.chunkBytes),
    concurrency: Math.max(1, opts.concurrency ?? 2),
    bytesPerSecMax: opts.bytesPerSecMax ?? 0,
  };
}

/**
 * Calls `visit` on every chunk of a volume of `sizeBytes`, in volume order, `concurrency` at once;
 * stops taking new chunks at the first failure. Returns the chunks visited without failure
 * (merged) and the first failure, if any.
 */
export async function walkChunks(
  sizeBytes: number,
  chunkBytes: number,
  concurrency: number,
  visit: (chunk: Extent) => Promise<void>,
): Promise<{ done: Extent[]; failure: unknown }> {
  const done: Extent[] = [];
  let next = 0;
  let failure: unknown;
  const worker = async () => {
    while (failure === undefined && next < sizeBytes) {
      const chunk = { offset: next, length: Math.min(chunkBytes, sizeBytes - next) };
      next += chunk.length;
      try {
        await visit(chunk);
        done.push(chunk);
      } catch (err) {
        failure ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, concurrency) }, worker));
  return { done: mergeExtents(done), failure };
}

/**
 * Runs one job at a time: `start` while one runs joins it. `running` is true until it settles.
 */
export class OneAtATime<T> {
  #running: Promise<T> | undefined;

  get running(): boolean {
    return this.#running !== undefined;
  }

  start(run: () => Promise<T>): Promise<T> {
    this.#running ??= run().finally(() => (this.#running = undefined));
    return this.#running;
  }
}

/** The progress fields every walk of a whole volume starts with (idle: not started yet). */
export function walkProgressStart(
  volume: string,
  sizeBytes: number,
  regionBytes: number,
  state: ResyncState,
  clock: Clock,
) {
  return {
    volume,
    state,
    startedAt: state === "idle" ? null : clock.now(),
    finishedAt: null,
    regionsTotal: regionsOf(0, sizeBytes, regionBytes).count,
    regionsDone: 0,
    bytesTotal: sizeBytes,
    bytesDone: 0,
    bytesPerSec: 0,
    etaSeconds: null,
    error: null,
  };
}

/** The fields of a job's progress its rate and ETA are computed from. */
export interface RateFields {
  state: string;
  startedAt: number | null;
  bytesTotal: number;
  bytesDone: number;
  bytesPerSec: number;
  etaSeconds: number | null;
}

/** A copy of `p` with the rate and ETA of a running job as of now. */
export function withLiveRate<P extends RateFields>(p: P, clock: Clock): P {
  const out = { ...p };
  if (out.state === "running" && out.startedAt !== null) {
    const seconds = Math.max(0.001, (clock.now() - out.startedAt) / 1000);
    out.bytesPerSec = Math.round(out.bytesDone / seconds);
    const left = Math.max(0, out.bytesTotal - out.bytesDone);
    out.etaSeconds = out.bytesPerSec > 0 ? Math.ceil(left / out.bytesPerSec) : null;
  }
  return out;
}

/** Sets the end time, the overall rate and the ETA (0 when done) of a finished job. */
export function finishRate(
  p: RateFields & { finishedAt: number | null },
  clock: Clock,
): void {
  p.finishedAt = clock.now();
  const seconds = Math.max(0.001, (p.finishedAt - (p.startedAt ?? p.finishedAt)) / 1000);
  p.bytesPerSec = Math.round(p.bytesDone / seconds);
  p.etaSeconds = p.state === "done" ? 0 : null;
}

/** What comparing a span needs: the raw primary and the backup's digests of the secondary. */
export interface CompareDeps {
  volume: string;
  regionBytes: number;
  primary: BlockDevice;
  secondary: SecondaryChecksums;
  backup: { markOffline(err: unknown): void };
}

/**
 * Compares `span` (whole regions) of the primary with the secondary: the backup's digests are
 * asked for before the primary is read and hashed, so the round trip overlaps the hashing. An
 * offline answer marks the backup offline. Returns the primary's bytes and the runs of regions
 * (indexes from the span's first region) whose digests differ.
 */
export async function compareSpan(
  deps: CompareDeps,
  span: Extent,
): Promise<{ data: Uint8Array; runs: RegionRun[] }> {
  const { volume, regionBytes, primary, secondary, backup } = deps;
  const theirs = secondary.checksums(volume, { ...span, regionBytes });
  theirs.catch(() => {}); // awaited below; a rejection while hashing is not unhandled
  const data = await primary.read(span.offset, span.length);
  const ours = await hashRegions(data, regionBytes);
  let digests: Uint8Array;
  try {
    digests = await theirs;
  } catch (err) {
    if ((err as { offline?: boolean }).offline === true) backup.markOffline(err);
    throw err;
  }
  return { data, runs: differingRuns(ours, digests) };
}
