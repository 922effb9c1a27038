/**
 * Large records on the link end to end (real sockets on 127.0.0.1, a real backup journal in a temp
 * dir): the host writes their payloads from their own buffers and the backup reads them straight
 * into its payload buffers, while small records still share frames; a stream cut inside a large
 * frame fails that connection and journals none of it.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { openBackup } from "../backup/service.ts";
import { LinkServer } from "../backup/link_server.ts";
import { LinkClient, linkSendDirectBytesMin } from "../host/link/link_client.ts";
import { encodeRecord } from "../src/journal_record.ts";
import {
  encodeFrame,
  encodeJsonFrame,
  FrameReader,
  FrameType,
  writeAll,
} from "../src/link_protocol.ts";
import { randomBytes, seededRandom } from "../src/random.ts";

const volSize = 8 * 1024 * 1024;
const block = 4096;

async function start() {
  const dir = await Deno.makeTempDir({ prefix: "link_large_test_" });
  const backup = await openBackup({ dataDir: dir, log: () => {} });
  const server = LinkServer.listen({ journal: backup.journal, store: backup.store }, {
    hostname: "127.0.0.1",
    port: 0,
  });
  return {
    dir,
    backup,
    server,
    async [Symbol.asyncDispose]() {
      await server.close();
      await backup.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("large records leave uncopied and arrive intact, among small ones that still share frames", async () => {
  await using f = await start();
  const link = new LinkClient({
    address: `tcp://127.0.0.1:${f.server.port}`,
    hostId: "h1",
    volumes: [{ name: "a", sizeBytes: volSize, epoch: 1 }],
  });
  await link.open();
  const rand = seededRandom(11);
  const expected = new Uint8Array(volSize);
  const sizes = [block, linkSendDirectBytesMin, block, 1024 * 1024, block, block, 300_000 + 8];
  const submits: Promise<void>[] = [];
  let large = 0;
  for (let round = 0; round < 4; round++) {
    for (const length of sizes) {
      const offset = Math.floor(rand() * ((volSize - length) / 512)) * 512;
      const data = randomBytes(rand, length);
      expected.set(data, offset);
      if (length >= linkSendDirectBytesMin) large++;
      submits.push(link.submit("a", { kind: "write", offset, length, data }));
    }
  }
  await Promise.all(submits);
  assert.equal(link.recordsSentDirect, large);
  assert.ok(link.framesSent < submits.length, `${link.framesSent} frames: none coalesced`);
  assert.equal(f.backup.journal.recordsAcknowledged, submits.length);
  await f.backup.applier.waitApplied(submits.length);
  const image = await Deno.readFile(join(f.dir, "volumes", "a.img"));
  assert.ok(image.every((b, i) => b === expected[i]), "the secondary differs from what was sent");
  await link.close();
});

Deno.test("a stream cut inside a large frame fails its connection and journals none of it", async () => {
  await using f = await start();
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: f.server.port! });
  const reader = new FrameReader(conn);
  const hello = {
    hostId: "h1",
    ack: "durable",
    volumes: [{ name: "a", sizeBytes: volSize, epoch: 1 }],
  };
  await writeAll(conn, encodeJsonFrame(FrameType.hello, hello));
  assert.equal((await reader.next())?.type, FrameType.welcome);
  const data = new Uint8Array(1024 * 1024).fill(5);
  const frame = encodeFrame(
    FrameType.records,
    1,
    encodeRecord({ kind: "write", volume: "a", offset: 0, length: data.length, data }),
  );
  await writeAll(conn, frame.subarray(0, frame.length - 4096));
  await conn.closeWrite();
  const err = await reader.next();
  assert.equal(err?.type, FrameType.error);
  assert.match(new TextDecoder().decode(err!.payload), /Stream ended inside a frame/);
  assert.equal(await reader.next(), null);
  conn.close();
  assert.equal(f.backup.journal.recordsAcknowledged, 0);
  assert.equal(f.backup.journal.pendingBytes, 0);
});
