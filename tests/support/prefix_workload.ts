/**
 * The numbered-write workload and the prefix check of tests/integration_prefix_consistency.test.ts
 * (issue 10 item 3), shared by its resync rounds and its cycle rounds.
 *
 * Writes are numbered 1, 2, 3... in one sequence; write i fills each 4 KiB block it covers with the
 * u32 i, so any block of any image names the last write that reached it. Several writer loops
 * (each with its own hot area, the areas overlapping) take turns through one mutex held across the
 * HTTP write to the host: write i is issued only after write i-1 was answered. The host's apply
 * order is then exactly the sequence order, and "a point in time" means the prefix 1..N.
 */
import assert from "node:assert/strict";
import type { HostClient } from "../../host/client.ts";

export const prefixBlockBytes = 4096;
const wordsPerBlock = prefixBlockBytes / 4;

/** One numbered write: blocks [block, block + blocks) all hold `seq`. */
export interface Write {
  seq: number;
  block: number;
  blocks: number;
}

/** The volume the workload writes and how its writers spread over it. */
export interface PrefixLayout {
  volume: string;
  volumeBytes: number;
  writersCount: number;
  writeBlocksMax: number;
}

/** The image of the prefix 1..n of `writes` (in sequence order), as one number per block. */
export function prefixImage(
  layout: PrefixLayout,
  writes: readonly Write[],
  n: number,
): Uint32Array {
  const image = new Uint32Array(layout.volumeBytes / prefixBlockBytes);
  for (const w of writes) {
    if (w.seq > n) break;
    image.fill(w.seq, w.block, w.block + w.blocks);
  }
  return image;
}

/** The number each block of the image file holds; throws on a block mixing two writes. */
export async function readImage(layout: PrefixLayout, path: string): Promise<Uint32Array> {
  const bytes = await Deno.readFile(path);
  assert.equal(bytes.length, layout.volumeBytes);
  const words = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
  const blocks = layout.volumeBytes / prefixBlockBytes;
  const image = new Uint32Array(blocks);
  for (let b = 0; b < blocks; b++) {
    const first = words[b * wordsPerBlock];
    for (let i = 1; i < wordsPerBlock; i++) {
      if (words[b * wordsPerBlock + i] !== first) {
        throw new Error(`Block ${b} mixes writes ${first} and ${words[b * wordsPerBlock + i]}`);
      }
    }
    image[b] = first;
  }
  return image;
}

/**
 * Checks `image` against the model; returns its N (the largest number in any block). The first
 * blocks that differ from the prefix image are named with what they hold and what the prefix says.
 */
export function checkPrefix(
  layout: PrefixLayout,
  image: Uint32Array,
  writes: readonly Write[],
  where: string,
): number {
  const n = image.reduce((m, v) => Math.max(m, v), 0);
  const expected = prefixImage(layout, writes, n);
  const bad: string[] = [];
  for (let b = 0; b < image.length && bad.length < 5; b++) {
    if (image[b] !== expected[b]) bad.push(`block ${b} holds ${image[b]}, prefix ${expected[b]}`);
  }
  assert.equal(bad.length, 0, `${where}: the secondary is not the prefix 1..${n}: ${bad}`);
  return n;
}

/** Serialised, numbered writes from several writer loops (see the file comment). */
export class Workload {
  readonly writes: Write[] = [];
  #turn: Promise<void> = Promise.resolve();
  /** The write whose answer never came (the host died under it); re-issued next round. */
  unanswered: Write | undefined;

  constructor(private readonly layout: PrefixLayout, private readonly rand: () => number) {}

  /** Writer `w`'s next write: in its own hot area of the volume, overlapping its neighbours'. */
  #next(w: number): Omit<Write, "seq"> {
    const { volumeBytes, writersCount, writeBlocksMax } = this.layout;
    const volumeBlocks = volumeBytes / prefixBlockBytes;
    const blocks = 1 + Math.floor(this.rand() * writeBlocksMax);
    const area = volumeBlocks / writersCount;
    const start = Math.floor(w * area - area / 4 + this.rand() * area * 1.5);
    const block = Math.max(0, Math.min(volumeBlocks - blocks, start));
    return { block, blocks };
  }

  /** Issues one write of writer `w` in its turn; false once the host stops answering. */
  async write(host: HostClient, w: number): Promise<boolean> {
    let release!: () => void;
    const previous = this.#turn;
    this.#turn = new Promise((r) => release = r);
    await previous;
    try {
      if (this.unanswered !== undefined) return false; // settle() first
      const write = { seq: this.writes.length + 1, ...this.#next(w) };
      this.writes.push(write);
      return await this.#send(host, write);
    } finally {
      release();
    }
  }

  /**
   * Re-issues the unanswered write, if any (nothing else is written while it is): the host died
   * under it, so it may be in the primary, partly or not at all; the same numbers in the same
   * blocks make the primary's history and the model agree again.
   */
  async settle(host: HostClient): Promise<void> {
    const w = this.unanswered;
    if (w === undefined) return;
    this.unanswered = undefined;
    assert.ok(await this.#send(host, w), `re-issue of write ${w.seq} failed`);
  }

  async #send(host: HostClient, w: Write): Promise<boolean> {
    const data = new Uint8Array(w.blocks * prefixBlockBytes);
    new Uint32Array(data.buffer).fill(w.seq);
    try {
      await host.write(this.layout.volume, w.block * prefixBlockBytes, data);
      return true;
    } catch {
      this.unanswered = w;
      return false;
    }
  }

  /**
   * Runs `writersCount` loops until `count` writes were issued, `stop()` or the host dies;
   * `done` resolves when all ended.
   */
  run(host: HostClient, count: number | undefined): { stop(): void; done: Promise<void> } {
    let stopped = false;
    let left = count ?? Infinity;
    const loop = async (w: number) => {
      while (!stopped && left-- > 0) {
        if (!await this.write(host, w)) return;
      }
    };
    const done = Promise.all(
      Array.from({ length: this.layout.writersCount }, (_, w) => loop(w)),
    ).then(() => {});
    return { stop: () => stopped = true, done };
  }
}
