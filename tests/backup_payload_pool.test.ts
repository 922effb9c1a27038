/**
 * The backup's payload pool (backup/payload_pool.ts): buffers come back only from their taker,
 * once, within the retention bound; and through the link, recycled frame buffers never change
 * what reaches the secondaries (waves of random writes through a small journal, so every wave's
 * buffers are released and reused by the next).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { openBackup } from "../backup/service.ts";
import { LinkServer } from "../backup/link_server.ts";
import { payloadClassBytes, PayloadPool } from "../backup/payload_pool.ts";
import { LinkClient } from "../host/link/link_client.ts";
import { randomBytes, seededRandom } from "../src/random.ts";

Deno.test("size classes are at most 1/8 larger than the payload", () => {
  for (const bytes of [1, 4096, 4097, 131_072, 131_073, 135_000, 1_000_000, 33_619_968]) {
    const size = payloadClassBytes(bytes);
    assert.ok(size >= bytes, `class ${size} < ${bytes}`);
    assert.ok(bytes <= 4096 || size <= bytes * 1.125, `class ${size} for ${bytes}`);
  }
});

Deno.test("a given buffer is reused once; foreign and repeated gives are ignored", () => {
  const pool = new PayloadPool(1024 * 1024);
  const a = pool.take(5000);
  assert.equal(a.length, 5000);
  pool.give(a);
  pool.give(a); // a second give must not queue the buffer twice
  pool.give(new Uint8Array(5000)); // not the pool's
  assert.equal(pool.retainedBytes, payloadClassBytes(5000));
  const b = pool.take(4800);
  assert.equal(b.buffer, a.buffer);
  assert.equal(pool.reused, 1);
  const c = pool.take(4800);
  assert.notEqual(c.buffer, b.buffer, "one buffer handed out twice");
  pool.give(a); // a stale view of a buffer handed out again (as b) must not return it
  assert.equal(pool.retainedBytes, 0);
});

Deno.test("a payload whose class has no free buffer takes one of a larger class, up to twice its class", () => {
  const pool = new PayloadPool(1024 * 1024);
  const big = pool.take(9000); // class 9216
  const huge = pool.take(40_000); // class 40960: more than twice class 5120
  pool.give(big);
  pool.give(huge);
  const a = pool.take(5000); // class 5120: none free; 9216 is within twice 5120
  assert.equal(a.buffer, big.buffer);
  assert.equal(a.length, 5000);
  assert.equal(pool.retainedBytes, payloadClassBytes(40_000));
  const b = pool.take(5000); // only 40960 left: too large, a new buffer
  assert.notEqual(b.buffer, huge.buffer);
  assert.equal(b.buffer.byteLength, payloadClassBytes(5000));
  pool.give(a); // back to its own (larger) class
  assert.equal(pool.retainedBytes, payloadClassBytes(9000) + payloadClassBytes(40_000));
});

Deno.test("the pool keeps at most its retention bound", () => {
  const pool = new PayloadPool(3 * 8192);
  const bufs = Array.from({ length: 5 }, () => pool.take(8192));
  for (const b of bufs) pool.give(b);
  assert.equal(pool.retainedBytes, 3 * 8192);
});

/**
 * Waves of `frames` frames of `perFrame` random writes of `block` bytes each, every wave applied
 * before the next: the secondary must end exactly as written, and buffers must have been reused.
 */
async function recycledWaves(block: number, perFrame: number, frames: number): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "payload_pool_test_" });
  const volSize = Math.max(1024 * 1024, 8 * block);
  // A small journal (checkpoints every quarter of it at most; each wave waits for its own), so
  // buffers are released and reused wave after wave.
  const backup = await openBackup({
    dataDir: dir,
    journalBytesMax: 4 * perFrame * frames * (block + 64),
    log: () => {},
  });
  const server = LinkServer.listen({ journal: backup.journal, store: backup.store }, {
    hostname: "127.0.0.1",
    port: 0,
  });
  const link = new LinkClient({
    address: `tcp://127.0.0.1:${server.port}`,
    hostId: "h1",
    volumes: [{ name: "a", sizeBytes: volSize, epoch: 1 }],
  });
  try {
    await link.open();
    const rand = seededRandom(8);
    const expected = new Uint8Array(volSize);
    let records = 0;
    for (let wave = 0; wave < 8; wave++) {
      // Several frames acknowledged one after the other, all waiting to be applied together:
      // a buffer reused before its batch was released would overwrite an earlier one.
      for (let frame = 0; frame < frames; frame++) {
        const submits: Promise<void>[] = [];
        for (let i = 0; i < perFrame; i++) {
          const offset = Math.floor(rand() * (volSize / block)) * block;
          const data = randomBytes(rand, block);
          expected.set(data, offset);
          submits.push(link.submit("a", { kind: "write", offset, length: block, data }));
        }
        await Promise.all(submits);
        records += submits.length;
      }
      await backup.applier.waitApplied(records);
    }
    assert.ok(backup.journal.payloads.reused > 0, "no frame buffer was reused");
    const image = await Deno.readFile(join(dir, "volumes", "a.img"));
    assert.deepEqual(image, expected, "the secondary differs from what was written");
  } finally {
    await link.close();
    await server.close();
    await backup.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("recycled frame buffers leave the secondaries exactly as written", async () => {
  await recycledWaves(4096, 4, 6);
});

Deno.test("large frames are lent to the apply worker and still recycled", async () => {
  // 320 KiB records: frames above applyLendBytesMin go to the worker without a copy.
  await recycledWaves(320 * 1024, 1, 4);
});
