/**
 * The link end to end over real sockets on 127.0.0.1 and a real backup journal in a temp dir:
 * acknowledged records are journaled and applied, the ack modes answer in their order, a cut
 * rejects every unacknowledged submit and a newer epoch fences the old connection out, and a full
 * journal withholds credit instead of refusing frames.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { type Backup, openBackup } from "../backup/service.ts";
import { LinkServer } from "../backup/link_server.ts";
import { listSegments, segmentPath } from "../backup/segment_files.ts";
import { LinkClient } from "../host/link/link_client.ts";
import { decodeRecord, encodeRecord } from "../src/journal_record.ts";
import {
  encodeFrame,
  encodeJsonFrame,
  type Frame,
  frameJson,
  FrameReader,
  FrameType,
  type LinkError,
  writeAll,
} from "../src/link_protocol.ts";
import { randomBytes, seededRandom } from "../src/random.ts";

const volSize = 1024 * 1024;
const block = 4096;

interface Fixture {
  dir: string;
  backup: Backup;
  server: LinkServer;
  address: string;
  [Symbol.asyncDispose](): Promise<void>;
}

async function start(opts: { journalBytesMax?: number; paused?: boolean } = {}): Promise<Fixture> {
  const dir = await Deno.makeTempDir({ prefix: "link_test_" });
  const backup = await openBackup({
    dataDir: dir,
    journalBytesMax: opts.journalBytesMax,
    applierPaused: opts.paused,
    log: () => {},
  });
  const server = LinkServer.listen({ journal: backup.journal, store: backup.store }, {
    hostname: "127.0.0.1",
    port: 0,
  });
  return {
    dir,
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

/** Every record in the journal's segment files, in journal order. */
async function journalRecords(dir: string): Promise<{ volume: string; data: Uint8Array }[]> {
  const jdir = join(dir, "journal");
  const out: { volume: string; data: Uint8Array }[] = [];
  for (const id of await listSegments(jdir)) {
    const bytes = await Deno.readFile(segmentPath(jdir, id));
    for (let pos = 0; pos < bytes.length;) {
      const d = decodeRecord(bytes, pos);
      if (!d.ok) break;
      out.push({ volume: d.record.volume, data: d.record.data.slice() });
      pos = d.next;
    }
  }
  return out;
}

Deno.test("records acknowledged over the link are journaled and applied to the secondaries", async () => {
  await using f = await start();
  const link = new LinkClient({
    address: f.address,
    hostId: "h1",
    volumes: [{ name: "a", sizeBytes: volSize, epoch: 1 }, {
      name: "b",
      sizeBytes: volSize,
      epoch: 1,
    }],
  });
  const welcome = await link.open();
  assert.deepEqual(welcome.volumes.map((v) => v.created), [true, true]);
  const rand = seededRandom(42);
  const expected = { a: new Uint8Array(volSize), b: new Uint8Array(volSize) };
  const submits: Promise<void>[] = [];
  for (let i = 0; i < 300; i++) {
    const volume = rand() < 0.5 ? "a" : "b";
    const offset = Math.floor(rand() * (volSize / block)) * block;
    const data = randomBytes(rand, block);
    expected[volume].set(data, offset);
    submits.push(link.submit(volume, { kind: "write", offset, length: block, data }));
  }
  await Promise.all(submits);
  assert.equal(f.backup.journal.recordsAcknowledged, 300);
  assert.ok(link.framesSent < 300, `${link.framesSent} frames for 300 records: none coalesced`);
  await f.backup.applier.waitApplied(300);
  for (const volume of ["a", "b"] as const) {
    const image = await Deno.readFile(join(f.dir, "volumes", `${volume}.img`));
    assert.deepEqual(image, expected[volume], `secondary ${volume} differs`);
  }
  await link.close();
});

/** A raw connection speaking frames, for checking what the backup sends and when. */
async function rawConnect(f: Fixture, epoch: number, ack: "durable" | "received") {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: f.server.port! });
  const reader = new FrameReader(conn);
  await writeAll(
    conn,
    encodeJsonFrame(FrameType.hello, {
      hostId: "h1",
      ack,
      volumes: [{ name: "a", sizeBytes: volSize, epoch }],
    }),
  );
  const welcome = await reader.next();
  assert.equal(welcome?.type, FrameType.welcome);
  return { conn, reader };
}

function recordsFrame(seq: number, tag: number): Uint8Array {
  const data = new Uint8Array(block).fill(tag);
  return encodeFrame(
    FrameType.records,
    seq,
    encodeRecord({ kind: "write", volume: "a", offset: 0, length: block, data }),
  );
}

Deno.test("durable mode answers ACK only; received mode answers RECEIVED before HARDENED", async () => {
  await using f = await start();
  const durable = await rawConnect(f, 1, "durable");
  await writeAll(durable.conn, recordsFrame(1, 1));
  const ack = await durable.reader.next();
  assert.deepEqual([ack?.type, ack?.sequence], [FrameType.ack, 1]);
  durable.conn.close();

  const received = await rawConnect(f, 2, "received");
  await writeAll(received.conn, recordsFrame(1, 2));
  const first = await received.reader.next();
  const second = await received.reader.next();
  assert.deepEqual([first?.type, first?.sequence], [FrameType.received, 1]);
  assert.deepEqual([second?.type, second?.sequence], [FrameType.hardened, 1]);
  received.conn.close();
});

Deno.test("many frames made durable by one group commit are answered by one cumulative ACK", async () => {
  await using f = await start();
  const raw = await rawConnect(f, 1, "durable");
  const frames = [1, 2, 3, 4, 5].map((s) => recordsFrame(s, s));
  const burst = new Uint8Array(frames.length * frames[0].length);
  frames.forEach((fr, i) => burst.set(fr, i * fr.length));
  await writeAll(raw.conn, burst);
  const acks: Frame[] = [];
  while (acks.at(-1)?.sequence !== 5) acks.push((await raw.reader.next())!);
  assert.ok(acks.every((a) => a.type === FrameType.ack));
  assert.ok(acks.length < 5, `${acks.length} ACKs for 5 frames`);
  raw.conn.close();
});

Deno.test("a frame out of sequence gets ERROR and is not journaled", async () => {
  await using f = await start();
  const raw = await rawConnect(f, 1, "durable");
  await writeAll(raw.conn, recordsFrame(2, 9));
  const err = await raw.reader.next();
  assert.equal(err?.type, FrameType.error);
  assert.match(frameJson<LinkError>(err!).message, /sequence 2 follows 0/);
  assert.equal(await raw.reader.next(), null);
  assert.equal(f.backup.journal.recordsAcknowledged, 0);
  raw.conn.close();
});

Deno.test("after a newer epoch says HELLO, the old connection's frames are refused", async () => {
  await using f = await start({ paused: true });
  const old = await rawConnect(f, 1, "durable");
  await writeAll(old.conn, recordsFrame(1, 1));
  assert.equal((await old.reader.next())?.type, FrameType.ack);
  const fresh = await rawConnect(f, 2, "durable");
  await writeAll(old.conn, recordsFrame(2, 1));
  const err = await old.reader.next();
  assert.equal(err?.type, FrameType.error);
  assert.match(frameJson<LinkError>(err!).message, /epoch 1, older than 2/);
  await writeAll(fresh.conn, recordsFrame(1, 2));
  assert.equal((await fresh.reader.next())?.type, FrameType.ack);
  const tags = (await journalRecords(f.dir)).map((r) => r.data[0]);
  assert.deepEqual(tags, [1, 2]);
  old.conn.close();
  fresh.conn.close();
});

/** A TCP proxy that can cut every connection through it. */
function proxy(target: number) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  const pipes: Promise<unknown>[] = [];
  const loop = (async () => {
    for await (const inbound of listener) {
      const outbound = await Deno.connect({ hostname: "127.0.0.1", port: target });
      conns.push(inbound, outbound);
      pipes.push(inbound.readable.pipeTo(outbound.writable).catch(() => {}));
      pipes.push(outbound.readable.pipeTo(inbound.writable).catch(() => {}));
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    cut() {
      for (const c of conns.splice(0)) {
        try {
          c.close();
        } catch { /* closed by its pipe */ }
      }
    },
    async close() {
      this.cut();
      listener.close();
      await loop;
      await Promise.allSettled(pipes);
    },
  };
}

Deno.test("a cut link rejects every unacknowledged submit; the reconnected epoch fences the old one", async () => {
  await using f = await start({ paused: true });
  const p = proxy(f.server.port!);
  const link = new LinkClient({
    address: `tcp://127.0.0.1:${p.port}`,
    hostId: "h1",
    volumes: [{ name: "a", sizeBytes: volSize, epoch: 1 }],
  });
  await link.open();
  const outcomes: Promise<"ok" | "rejected">[] = [];
  const submitOld = () => {
    const data = new Uint8Array(block).fill(1);
    outcomes.push(
      link.submit("a", { kind: "write", offset: 0, length: block, data }).then(
        () => "ok" as const,
        () => "rejected" as const,
      ),
    );
  };
  for (let i = 0; i < 50; i++) submitOld();
  await outcomes[0];
  for (let i = 0; i < 200; i++) submitOld();
  p.cut();
  const results = await Promise.all(outcomes);
  assert.ok(results.includes("rejected"), "the cut came after every record was acknowledged");
  assert.ok(link.failure);
  await assert.rejects(link.submit("a", { kind: "zero", offset: 0, length: block }));
  const acked = results.filter((r) => r === "ok").length;
  assert.ok(f.backup.journal.recordsAcknowledged >= acked);

  await link.reconnect([{ name: "a", sizeBytes: volSize, epoch: 2 }]);
  const data = new Uint8Array(block).fill(2);
  await link.submit("a", { kind: "write", offset: 0, length: block, data });
  const tags = (await journalRecords(f.dir)).map((r) => r.data[0]);
  const firstNew = tags.indexOf(2);
  assert.ok(firstNew >= acked, "a record acknowledged before the cut is missing");
  assert.ok(tags.slice(firstNew).every((t) => t === 2), "an old record came after the new epoch");
  await link.close();
  await p.close();
});

Deno.test("a full journal withholds credit: submits wait and time out instead of being refused", async () => {
  await using f = await start({ journalBytesMax: 64 * 1024, paused: true });
  const link = new LinkClient({
    address: f.address,
    hostId: "h1",
    volumes: [{ name: "a", sizeBytes: volSize, epoch: 1 }],
    ackTimeoutMs: 300,
  });
  await link.open();
  const outcomes = await Promise.all(
    Array.from({ length: 40 }, (_, i) => {
      const data = new Uint8Array(block).fill(i);
      return link.submit("a", { kind: "write", offset: i * block, length: block, data }).then(
        () => "ok",
        (err: Error) => err.message,
      );
    }),
  );
  assert.ok(link.credit < block, `credit ${link.credit} left room for a record`);
  assert.ok(f.backup.journal.pendingBytes <= 64 * 1024);
  const rejected = outcomes.filter((o) => o !== "ok");
  assert.ok(outcomes.includes("ok") && rejected.length > 0, JSON.stringify(outcomes));
  assert.ok(rejected.every((m) => /No ack from the backup/.test(m)), rejected[0]);
  await link.close();
});

Deno.test("credit withheld for a full journal is granted when the applier reclaims room, unasked", async () => {
  await using f = await start({ journalBytesMax: 64 * 1024, paused: true });
  // Long enough never to fire while the backup still works; the old 20 ms credit poll gave up
  // after one look, so room reclaimed later never reached the host and every submit timed out.
  const link = new LinkClient({
    address: f.address,
    hostId: "h1",
    volumes: [{ name: "a", sizeBytes: volSize, epoch: 1 }],
    ackTimeoutMs: 10_000,
  });
  await link.open();
  const data = (i: number) => new Uint8Array(block).fill(i + 1);
  const outcomes = Array.from(
    { length: 40 },
    (_, i) =>
      link.submit("a", { kind: "write", offset: i * block, length: block, data: data(i) }).then(
        () => "ok",
        (err: Error) => err.message,
      ),
  );
  for (let i = 0; link.credit >= block || f.backup.journal.recordsAcknowledged === 0; i++) {
    assert.ok(i < 500, `credit ${link.credit} never ran short`);
    await new Promise((r) => setTimeout(r, 10));
  }
  await new Promise((r) => setTimeout(r, 200)); // the host waits for credit, with nothing in flight
  f.backup.applier.resume();
  assert.deepEqual(await Promise.all(outcomes), outcomes.map(() => "ok"));
  await f.backup.applier.waitWritten(f.backup.journal.recordsAcknowledged);
  const secondary = await Deno.readFile(join(f.dir, "volumes", "a.img"));
  for (let i = 0; i < 40; i++) {
    assert.deepEqual(secondary.subarray(i * block, (i + 1) * block), data(i), `block ${i}`);
  }
  await link.close();
});

Deno.test("a record larger than the credit left gets room at once: the applier checkpoints for a waiting sender", async () => {
  // 1 MiB journal: 400 KiB pending is under half, so the applier would wait its checkpoint
  // interval (1 s) before reclaiming it; a 700 KiB record needs that room.
  await using f = await start({ journalBytesMax: 1024 * 1024 });
  const link = new LinkClient({
    address: f.address,
    hostId: "h1",
    volumes: [{ name: "a", sizeBytes: volSize, epoch: 1 }],
    ackTimeoutMs: 900, // under the applier's checkpoint interval: waiting for it fails the link
  });
  await link.open();
  const first = new Uint8Array(400 * 1024).fill(7);
  await link.submit("a", { kind: "write", offset: 0, length: first.length, data: first });
  assert.ok(link.credit < 700 * 1024, `credit ${link.credit} already left room`);
  const second = new Uint8Array(700 * 1024).fill(9);
  await link.submit("a", { kind: "write", offset: 0, length: second.length, data: second });
  assert.equal(f.backup.journal.recordsAcknowledged, 2);
  await link.close();
});

Deno.test("received mode resolves on receipt and keeps regions unhardened until HARDENED covers them", async () => {
  await using f = await start();
  const link = new LinkClient({
    address: f.address,
    hostId: "h1",
    ack: "received",
    regionBytes: 64 * 1024,
    volumes: [{ name: "a", sizeBytes: volSize, epoch: 1 }],
  });
  await link.open();
  // What the client noted unhardened, seen as it happens: a HARDENED notice read in the same
  // chunk as the ACK may clear the record before a submit's `.then` runs, so the record itself,
  // read afterwards, cannot tell whether the write was ever noted.
  const record = link.unhardened("a")!;
  const noted = new Set<number>();
  const received = record.received.bind(record);
  record.received = (offset: number, length: number) => {
    noted.add(offset);
    received(offset, length);
  };
  const notedAtResolve: boolean[] = [];
  await Promise.all(Array.from({ length: 64 }, (_, i) => {
    const data = new Uint8Array(block).fill(i + 1);
    return link.submit("a", { kind: "write", offset: i * block, length: block, data }).then(
      () => notedAtResolve.push(noted.has(i * block)),
    );
  }));
  // Every write was noted unhardened no later than its submit resolved.
  assert.equal(notedAtResolve.length, 64);
  assert.ok(notedAtResolve.every((n) => n), "a received write was not noted unhardened");
  await f.backup.applier.waitApplied(64);
  // Every frame sent is hardened by now: the last notice emptied both sets.
  for (let i = 0; i < 50 && !link.unhardened("a")!.empty; i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.ok(link.unhardened("a")!.empty, `${link.unhardened("a")!.unionRegions()}`);
  await link.close();
});
