/**
 * Byte bounds that must agree across services, defined once so that their relations can be
 * asserted when the module loads (TigerBeetle's `constants.zig` habit): a change that breaks one
 * of them fails at startup, not as an outage under load.
 *
 * Capacity reasoning, from the bottom up:
 *
 *   - A journal record (src/journal_record.ts) carries at most `recordPayloadBytesMax` (32 MiB) of
 *     payload; its length field is a u32, so the bound is a policy, not the format's limit. With
 *     its 24-byte header and a name of at most `volumeNameBytesMax` (64) bytes, one record is at
 *     most `recordBytesMax` = 32 MiB + 88 bytes.
 *   - The front-ends hand the fork layer writes of at most `nbdRequestBytesMaxDefault` (NBD, the
 *     2^25 bytes the NBD spec says any client may use; the server's `requestBytesMax` option
 *     may raise it to 256 MiB) and `httpIoBytesMax` (HTTP). Both defaults fit one record; a larger write reaching
 *     the fork layer is split into records there (host/fork/fork_device.ts), like long zero ranges.
 *   - The host's BackupBatcher packs records into batches of at most `hostBatchBytesMax` (8 MiB);
 *     a single record larger than that leaves alone, so the backup must accept a one-record batch
 *     of `recordBytesMax`: `backupBatchBytesMaxDefault` (64 MiB) is at least that. A backup started
 *     with a smaller `--batch-bytes-max` refuses such batches with 413, and the host takes it
 *     offline: an operator's choice, not a default.
 *   - The batcher queues at most `hostBatchQueueBytesMax` (64 MiB) per volume before submitters
 *     wait; an empty queue always admits one record, and the bound holds at least one full record.
 *
 *   - Checksum resync (src/region_checksums.ts) asks the backup for the digests of at most
 *     `checksumRegionsMax` (4096) regions spanning at most `checksumSpanBytesMax` (256 MiB) per
 *     request: 4096 × 32 B = 128 KiB of digests (base64: 171 KiB of JSON), and at 1 GB/s of
 *     hashing about a quarter of a second of the backup's time, so no request holds it long.
 *
 * The tracker's request body bound (1 MiB, tracker/app.ts) carries marks, never data, so it has
 * no relation to these.
 */
import assert from "node:assert/strict";
import { requestTimeoutMsDefault } from "./http_client.ts";

const MiB = 1024 * 1024;

/*
 * Epoch bounds (backup/epoch_fence.ts checks every registration and HELLO against them, so one
 * forged request cannot fence a volume for good):
 *
 *   - A link epoch is the host's clock in ms at its start, plus one per backup outage it saw; a
 *     real one is never ahead of the backup's clock by more than the two clocks' skew plus the
 *     outages. `epochAheadMsMax` (1 day) allows 86.4 M outages or a day of skew; 2^53 - 1 is
 *     285 000 years ahead and is refused.
 *   - A lease epoch is raised by one at the tracker per change of owning agent instance (takeover,
 *     expiry, restart). A registration may raise the backup's lease epoch of a volume by at most
 *     `leaseEpochStepMax` (2^20, a million owner changes the backup did not see, e.g. an agent
 *     restarted every 30 s for a year while the backup was away); 0 counts as the current one of
 *     a volume the backup has none for (fences live in memory, so after a backup restart too).
 */
/** Farthest a link epoch may be ahead of the backup's clock, in ms. */
export const epochAheadMsMax = 24 * 3600 * 1000;
/** Most a registration may raise a volume's lease epoch at the backup, in owner changes. */
export const leaseEpochStepMax = 2 ** 20;

// Both bounds leave any real epoch far below the largest safe integer.
assert(leaseEpochStepMax < Number.MAX_SAFE_INTEGER / 2);

/** Longest volume name in bytes (ASCII), as a record's name field and file names allow. */
export const volumeNameBytesMax = 64;
/** Bytes of a journal record's fixed header (src/journal_record.ts layout). */
export const recordHeaderBytes = 24;
/** Largest payload one journal record carries; larger writes are split by the fork layer. */
export const recordPayloadBytesMax = 32 * MiB;
/** Largest encoded journal record: header, longest name, largest payload. */
export const recordBytesMax = recordHeaderBytes + volumeNameBytesMax + recordPayloadBytesMax;
/** Default largest NBD READ / WRITE the host's NBD server accepts. */
export const nbdRequestBytesMaxDefault = 32 * MiB;
/** Largest body of a host HTTP write, and largest length of a host HTTP read. */
export const httpIoBytesMax = 32 * MiB;
/** Default largest batch body the host's BackupBatcher packs (a lone larger record still goes). */
export const hostBatchBytesMax = 8 * MiB;
/** Default bytes the host's BackupBatcher queues per volume before `submit` waits. */
export const hostBatchQueueBytesMax = 64 * MiB;
/** Default largest batch body the backup accepts; larger ones get 413. */
export const backupBatchBytesMaxDefault = 64 * MiB;
/** Most regions one checksum request covers. */
export const checksumRegionsMax = 4096;
/** Most bytes one checksum request spans (whatever the region size). */
export const checksumSpanBytesMax = 256 * MiB;
/**
 * Most differing extents a verify's progress lists (the rest are counted, and all are marked at
 * the tracker): a volume differing in every other region would otherwise list millions.
 */
export const verifyExtentsListedMax = 1000;

// The record's length field is a u32.
assert(recordPayloadBytesMax <= 0xffff_ffff);
// By default one front-end write is one record.
assert(nbdRequestBytesMaxDefault <= recordPayloadBytesMax);
assert(httpIoBytesMax <= recordPayloadBytesMax);
// Whatever the batcher sends by default, the backup accepts by default.
assert(hostBatchBytesMax <= backupBatchBytesMaxDefault);
assert(recordBytesMax <= backupBatchBytesMaxDefault);
// The batcher's queue holds at least one largest record.
assert(recordBytesMax <= hostBatchQueueBytesMax);
assert(hostBatchBytesMax <= hostBatchQueueBytesMax);
// A checksum span of default-sized (64 KiB) regions is bounded by the region count, not the span.
assert(checksumRegionsMax * 64 * 1024 <= checksumSpanBytesMax);

/*
 * Events (src/events.ts): each process keeps its most recent events in a ring, so a follower of
 * `GET /v1/events` that reconnects (Last-Event-ID) misses nothing younger than the ring. An event
 * is a few hundred bytes of JSON (`eventBytesMax` bounds what one may carry), so the ring costs
 * at most `eventRingMax × eventBytesMax` = 1024 × 4 KiB = 4 MiB, about 300 KiB in practice.
 */
/** Most events a process keeps for replay (the oldest is dropped first). */
export const eventRingMax = 1024;
/** Largest JSON text of one event; a larger `data` is replaced by a note saying it was cut. */
export const eventBytesMax = 4096;
/** Longest an SSE follower of `/v1/events` waits without a byte: a heartbeat comment is sent. */
export const eventHeartbeatMs = 15_000;
/** Most events queued for one slow SSE follower before it is dropped (it reconnects and replays). */
export const eventFollowerQueueMax = 4096;

assert(eventRingMax <= eventFollowerQueueMax);

/**
 * etcd's bounds on one request (the tracker's etcd store, tracker/store/etcd_store.ts), at the
 * defaults of etcd 3.4 (`--max-txn-ops`, `--max-request-bytes`): a cluster started with smaller
 * ones refuses the tracker's larger transactions, so these must not exceed the cluster's.
 *
 *   - One group commit chunk is one txn: at most `etcdTxnOpsMax` puts/deletes and, apart, as many
 *     compares (one per key written, plus the volume's mark sequence). A segment's commit group is
 *     its dirty pair plus ≤ 64 hosts' activity keys: ≤ 66 operations, so a group always fits.
 *   - `etcdRequestBytesMax` counts the protobuf request: keys twice (compare and put) and values
 *     once; a fully dirty segment is ≈ 24.7 KiB, so ~58 of them fit one txn by bytes, 63 pairs
 *     by operations.
 */
/** etcd: most operations (and, separately, compares) in one txn (`--max-txn-ops`). */
export const etcdTxnOpsMax = 128;
/** etcd: largest request in bytes (`--max-request-bytes`, 1.5 MiB). */
export const etcdRequestBytesMax = 1.5 * MiB;
/** Margin kept under `etcdRequestBytesMax` for protobuf framing our estimate does not count. */
export const etcdRequestBytesMargin = 128 * 1024;
/** Most keys one etcd snapshot read (a txn of ranges) asks for. */
export const etcdGetManyKeysMax = etcdTxnOpsMax;

assert(etcdRequestBytesMargin < etcdRequestBytesMax / 4);

/*
 * A tracker's store probe and the etcd client's deadlines (tracker/store/store_probe.ts,
 * tracker/store/etcd_client.ts). A tracker whose store lost quorum still answers `/healthz`; its
 * `/v1/status` says so from a probe the tracker runs in the background, so the answer never waits
 * on the store. Every other route does wait on it, and must answer (503) before the host's call to
 * it gives up (`requestTimeoutMsDefault`, 10 s, src/http_client.ts), or the host cannot tell a
 * tracker without a store from a tracker that is gone:
 *
 *   - one request to one etcd endpoint waits at most `etcdRequestTimeoutMs` (3 s);
 *   - one store call (all endpoints, in turn) waits at most `etcdCallDeadlineMs` (6 s): with five
 *     members that hang, two are tried, not five (5 × 3 s = 15 s would outlast the host);
 *   - so a route's first store call fails by 6 s, and one more request still fits in the host's
 *     10 s (a route whose first call fails answers 503 at once).
 *
 * The probe reads one key linearizably from every endpoint at once, each bounded by
 * `storeProbeTimeoutMs`, every `storeProbeIntervalMs`: a lost quorum shows in `/v1/status` within
 * interval + timeout (3 s), and `deno task status` (3 s a call) reads it in time.
 */
/** One request to one etcd endpoint, in ms (etcd's own request timeout is 5 s + election). */
export const etcdRequestTimeoutMs = 3000;
/** One etcd store call over all its endpoints, in ms: below the host's tracker call timeout. */
export const etcdCallDeadlineMs = 6000;
/** Time between two probes of a tracker's store, in ms. */
export const storeProbeIntervalMs = 2000;
/** Longest one store probe waits for an answer, in ms (then the store is not ok). */
export const storeProbeTimeoutMs = 1000;

assert(etcdRequestTimeoutMs <= etcdCallDeadlineMs);
// A route whose store call failed at its deadline still has time for one more request.
assert(etcdCallDeadlineMs + etcdRequestTimeoutMs <= requestTimeoutMsDefault);
assert(storeProbeTimeoutMs < storeProbeIntervalMs);
