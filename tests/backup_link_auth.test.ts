/**
 * The link's HELLO carries the shared token: a backup with a token refuses a HELLO without it or
 * with a wrong one (ERROR 401, close) before it creates a secondary or raises an epoch, and takes
 * the right one. A backup without a token still takes a version 1 HELLO (no token field).
 */
import assert from "node:assert/strict";
import { crc32 } from "node:zlib";
import { openBackup } from "../backup/service.ts";
import { LinkServer } from "../backup/link_server.ts";
import { LinkClient } from "../host/link/link_client.ts";
import {
  encodeJsonFrame,
  frameJson,
  FrameReader,
  FrameType,
  type LinkError,
  writeAll,
} from "../src/link_protocol.ts";
import { processEvents } from "../src/events.ts";
import { setLogQuiet } from "../src/log_line.ts";

const volSize = 1024 * 1024;

async function start(token?: string) {
  const dir = await Deno.makeTempDir({ prefix: "link_auth_test_" });
  const backup = await openBackup({ dataDir: dir, log: () => {} });
  const server = LinkServer.listen({ journal: backup.journal, store: backup.store, token }, {
    hostname: "127.0.0.1",
    port: 0,
  });
  return {
    backup,
    server,
    address: `tcp://127.0.0.1:${server.port}`,
    async [Symbol.asyncDispose]() {
      await server.close();
      await backup.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

const client = (address: string, token?: string) =>
  new LinkClient({
    address,
    hostId: "h1",
    volumes: [{ name: "db0", sizeBytes: volSize, epoch: 7 }],
    token,
  });

/** Silences console.warn (the backup logs each refusal) while `fn` runs; returns what it logged. */
async function quietly(fn: () => Promise<void>): Promise<string> {
  // The backup's log lines are events (src/events.ts): read them there, print none.
  const logged: string[] = [];
  const unsubscribe = processEvents.subscribe((e) => logged.push(e.message));
  setLogQuiet(true);
  try {
    await fn();
  } finally {
    setLogQuiet(false);
    unsubscribe();
  }
  return logged.join("\n");
}

Deno.test("a backup with a token refuses a HELLO without it or with a wrong one, touching nothing", async (t) => {
  await using f = await start("s3cret");
  const cases: [string, string | undefined, RegExp][] = [
    ["no token", undefined, /\(401\): HELLO carries no token/],
    ["a wrong token", "s3cre", /\(401\): HELLO carries a wrong token/],
    ["the token with a trailing newline", "s3cret\n", /\(401\): HELLO carries a wrong token/],
  ];
  for (const [name, token, message] of cases) {
    await t.step(name, async () => {
      const link = client(f.address, token);
      const logged = await quietly(() => assert.rejects(link.open(), message));
      assert.match(logged, /refused HELLO of host "h1"/);
      assert.doesNotMatch(logged, /s3cre/, "the log names neither token");
      assert.equal(f.backup.store.sizeOf("db0"), undefined, "no secondary was created");
      assert.equal(f.server.fence.epochOf("db0"), undefined, "no epoch was raised");
      await link.close();
    });
  }
});

Deno.test("a backup with a token takes a HELLO with it, and the records that follow", async () => {
  await using f = await start("s3cret");
  const link = client(f.address, "s3cret");
  await link.open();
  await link.submit("db0", { kind: "write", offset: 0, length: 4, data: new Uint8Array(4) });
  assert.equal(f.backup.journal.recordsAcknowledged, 1);
  assert.equal(f.backup.store.sizeOf("db0"), volSize);
  await link.close();
});

Deno.test("a backup without a token still takes a version 1 HELLO", async () => {
  await using f = await start();
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: f.server.port! });
  try {
    const hello = encodeJsonFrame(FrameType.hello, {
      hostId: "h1",
      ack: "durable",
      volumes: [{ name: "db0", sizeBytes: volSize, epoch: 1 }],
    });
    hello[4] = 1; // version 1, then the checksum again over bytes 0..12 and 16..end
    const crc = crc32(hello.subarray(16), crc32(hello.subarray(0, 12)));
    new DataView(hello.buffer).setUint32(12, crc, true);
    await writeAll(conn, hello);
    const reply = await new FrameReader(conn).next();
    assert.equal(
      reply?.type,
      FrameType.welcome,
      JSON.stringify(reply && frameJson<LinkError>(reply)),
    );
    assert.equal(f.backup.store.sizeOf("db0"), volSize);
  } finally {
    conn.close();
  }
});
