/**
 * The answer to NBD_CMD_BLOCK_STATUS: one NBD_REPLY_TYPE_BLOCK_STATUS chunk per selected metadata
 * context (meta_context.ts), each a list of consecutive descriptors from the request's offset.
 *
 * Both contexts bound their work, and answer a prefix of the range when the range is larger (the
 * spec allows it: clients ask again from the first byte not described):
 * - `base:allocation` reads at most `allocationScanBytesMax` of the export per request and reports
 *   the 4 KiB blocks that read as zeroes as NBD_STATE_ZERO. It never reports NBD_STATE_HOLE:
 *   without SEEK_DATA / SEEK_HOLE the server does not know what is allocated.
 * - `trackmirror:dirty` asks the export's `DirtyExtentSource` once per request and sends at most
 *   `blockStatusDescriptorsMax` descriptors.
 */
import type { BlockDevice } from "../../src/block_device.ts";
import type { Extent } from "../../src/extent.ts";
import { baseAllocation, type MetaContext, NbdState, TrackmirrorState } from "./meta_context.ts";
import { type BlockStatusDescriptor, encodeBlockStatusChunk } from "./protocol.ts";

/** Most bytes of the export one request reads to find zero runs (base:allocation). */
export const allocationScanBytesMax = 8 * 1024 * 1024;
/** Zero runs are found in whole blocks of this size, aligned to the export's start. */
export const zeroScanBlockBytes = 4096;
/** Most descriptors in one chunk; the spec asks servers to send at most 2^20. */
export const blockStatusDescriptorsMax = 64 * 1024;

/**
 * The dirty record of one export, provided by the host agent (host/agent/dirty_extents.ts): the
 * NBD layer knows nothing of trackers or backups.
 */
export interface DirtyExtentSource {
  /**
   * Extents (any order, may overlap or extend past the range) covering every byte of
   * `offset`+`length` the backup's secondary may lack. Rejects when that cannot be known: the
   * request then fails rather than report a range clean that is not.
   */
  dirtyExtents(offset: number, length: number): Promise<Extent[]>;
}

/** One block status request, checked (request.ts) to lie inside the export. */
export interface BlockStatusQuery {
  cookie: bigint;
  offset: number;
  length: number;
  /** NBD_CMD_FLAG_REQ_ONE: exactly one descriptor per context, within the request's length. */
  one: boolean;
}

/** The reply chunks for `q`; the last one carries NBD_REPLY_FLAG_DONE. */
export async function blockStatusReply(
  q: BlockStatusQuery,
  contexts: readonly MetaContext[],
  device: BlockDevice,
  dirty: DirtyExtentSource | undefined,
): Promise<Uint8Array[]> {
  const chunks: Uint8Array[] = [];
  for (const [i, c] of contexts.entries()) {
    const descriptors = c.id === baseAllocation.id
      ? await allocationDescriptors(device, q)
      : dirtyDescriptors(await requireDirty(dirty).dirtyExtents(q.offset, q.length), q);
    chunks.push(encodeBlockStatusChunk(q.cookie, c.id, descriptors, i === contexts.length - 1));
  }
  return chunks;
}

function requireDirty(dirty: DirtyExtentSource | undefined): DirtyExtentSource {
  if (!dirty) throw new Error("This export has no dirty record");
  return dirty;
}

/** `base:allocation` of the first `allocationScanBytesMax` bytes of the query. */
export async function allocationDescriptors(
  device: BlockDevice,
  q: Pick<BlockStatusQuery, "offset" | "length" | "one">,
): Promise<BlockStatusDescriptor[]> {
  const scanBytes = Math.min(q.length, allocationScanBytesMax);
  const data = await device.read(q.offset, scanBytes);
  if (data.length !== scanBytes) {
    throw new Error(`Device returned ${data.length} bytes for a read of ${scanBytes}`);
  }
  const out: BlockStatusDescriptor[] = [];
  let at = 0;
  while (at < scanBytes) {
    // Blocks are aligned to the export's start: the first one may be short.
    const blockEnd = Math.min(
      scanBytes,
      (Math.floor((q.offset + at) / zeroScanBlockBytes) + 1) * zeroScanBlockBytes - q.offset,
    );
    const flags = isZero(data.subarray(at, blockEnd)) ? NbdState.ZERO : 0;
    const last = out.at(-1);
    if (last && last.flags === flags) last.length += blockEnd - at;
    else if (q.one && last) break;
    else out.push({ length: blockEnd - at, flags });
    at = blockEnd;
  }
  return out;
}

/**
 * `trackmirror:dirty` of the query from `extents`: alternating clean (0) and dirty runs from the
 * query's offset to its end, or to the end of the last descriptor the bound allows.
 */
export function dirtyDescriptors(
  extents: readonly Extent[],
  q: Pick<BlockStatusQuery, "offset" | "length" | "one">,
  descriptorsMax = blockStatusDescriptorsMax,
): BlockStatusDescriptor[] {
  const end = q.offset + q.length;
  const sorted = extents
    .map((e) => ({ start: Math.max(q.offset, e.offset), end: Math.min(end, e.offset + e.length) }))
    .filter((e) => e.start < e.end)
    .sort((a, b) => a.start - b.start);
  const out: BlockStatusDescriptor[] = [];
  const push = (length: number, flags: number) => {
    const last = out.at(-1);
    if (last && last.flags === flags) last.length += length;
    else out.push({ length, flags });
  };
  let at = q.offset;
  for (const e of sorted) {
    if (e.end <= at) continue; // inside what an earlier, overlapping extent covered
    if (e.start > at) push(e.start - at, 0);
    push(e.end - Math.max(at, e.start), TrackmirrorState.DIRTY);
    at = e.end;
    if (out.length >= descriptorsMax) break;
  }
  if (at < end && out.length < descriptorsMax) push(end - at, 0);
  return q.one ? out.slice(0, 1) : out.slice(0, descriptorsMax);
}

/** True when every byte of `b` is zero; word at a time where the buffer is aligned. */
export function isZero(b: Uint8Array): boolean {
  let i = 0;
  const head = (4 - (b.byteOffset % 4)) % 4;
  for (; i < Math.min(head, b.length); i++) if (b[i] !== 0) return false;
  const words = Math.floor((b.length - i) / 4);
  if (words > 0) {
    const w = new Uint32Array(b.buffer, b.byteOffset + i, words);
    for (let k = 0; k < words; k++) if (w[k] !== 0) return false;
    i += words * 4;
  }
  for (; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}
