/**
 * What the link itself keeps for `/metrics` (host/port_timing.ts): the writes of each volume not
 * yet acknowledged, read from the link's own queue, and one ack-time observation per write once
 * acknowledged. Against a scripted backup on 127.0.0.1 that acknowledges when the test says so;
 * the records it receives are decoded, so the reused frame buffer is checked byte for byte too.
 */
import assert from "node:assert/strict";
import { linkFramesAheadMax } from "../host/link/link_client.ts";
import { hostLatency, timedLinkFactory, UnackedWrites } from "../host/port_timing.ts";
import { decodeRecord } from "../src/journal_record.ts";
import {
  encodeAckFrame,
  encodeJsonFrame,
  type Frame,
  FrameReader,
  FrameType,
  type LinkWelcome,
  writeAll,
} from "../src/link_protocol.ts";
import { welcomeHello } from "./support/scripted_backup.ts";
import { Metrics } from "../src/metrics.ts";

/** The records of a RECORDS frame: offset and the byte every payload byte was filled with. */
function recordsIn(frame: Frame): { offset: number; fill: number }[] {
  const out: { offset: number; fill: number }[] = [];
  for (let pos = 0; pos < frame.payload.length;) {
    const d = decodeRecord(frame.payload, pos);
    assert.ok(d.ok, "the frame's records decode (checksums hold)");
    const fill = d.record.data[0];
    assert.ok(d.record.data.every((b) => b === fill), "a record's payload is its own");
    out.push({ offset: d.record.offset, fill });
    pos = d.next;
  }
  return out;
}

Deno.test("the link counts unacknowledged writes per volume and times each acknowledged one", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = listener.accept();
  const metrics = new Metrics({ defaults: false });
  const latency = hostLatency(metrics);
  const unacked = new UnackedWrites();
  const link = timedLinkFactory(latency, unacked)({
    address: `tcp://127.0.0.1:${listener.addr.port}`,
    hostId: "h1",
    ack: "durable",
    volumes: [
      { name: "db0", sizeBytes: 1024 * 1024, epoch: 1 },
      { name: "db1", sizeBytes: 1024 * 1024, epoch: 1 },
    ],
  });
  const opening = link.open();
  const conn = await accepted;
  const reader = new FrameReader(conn);
  try {
    await welcomeHello(conn, reader, ["db0", "db1"]);
    await opening;
    const write = (volume: string, i: number) =>
      link.submit(volume, {
        kind: "write",
        offset: i * 4096,
        length: 4096,
        data: new Uint8Array(4096).fill(i + 1),
      });
    // Frames one after another through the same frame buffer, none acknowledged yet.
    const submits = [write("db0", 0), write("db0", 1), write("db1", 2)];
    const seen: { offset: number; fill: number }[] = [];
    let lastSeq = 0;
    while (seen.length < 3) {
      const frame = (await reader.next())!;
      assert.equal(frame.type, FrameType.records);
      lastSeq = frame.sequence;
      seen.push(...recordsIn(frame));
    }
    assert.deepEqual(seen, [
      { offset: 0, fill: 1 },
      { offset: 4096, fill: 2 },
      { offset: 8192, fill: 3 },
    ]);
    assert.equal(unacked.view("db0").bytes, 8192);
    assert.equal(unacked.view("db1").bytes, 4096);
    assert.ok(unacked.view("db0").seconds >= 0);
    assert.equal(unacked.view("other").bytes, 0);

    await writeAll(conn, encodeAckFrame(FrameType.ack, lastSeq, 1024 * 1024));
    await Promise.all(submits);
    assert.deepEqual(unacked.view("db0"), { bytes: 0, seconds: 0 });
    assert.deepEqual(unacked.view("db1"), { bytes: 0, seconds: 0 });
    const observed = (await latency.backupAck.get()).values.find((v) =>
      v.metricName === "trackmirror_host_backup_ack_seconds_count"
    );
    assert.equal(observed?.value, 3, "one observation per acknowledged write");

    // A write the link loses is not acknowledged, not observed, and no longer counted.
    const lost = write("db0", 3);
    await reader.next();
    assert.equal(unacked.view("db0").bytes, 4096);
    conn.close();
    await assert.rejects(lost);
    assert.equal(unacked.view("db0").bytes, 0);
    const after = (await latency.backupAck.get()).values.find((v) =>
      v.metricName === "trackmirror_host_backup_ack_seconds_count"
    );
    assert.equal(after?.value, 3);
  } finally {
    await link.close();
    try {
      conn.close();
    } catch { /* closed above */ }
    listener.close();
  }
});

Deno.test("a write waiting for room under the in-flight bound counts as unacknowledged", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = listener.accept();
  const metrics = new Metrics({ defaults: false });
  const unacked = new UnackedWrites();
  const link = timedLinkFactory(hostLatency(metrics), unacked)({
    address: `tcp://127.0.0.1:${listener.addr.port}`,
    hostId: "h1",
    ack: "durable",
    volumes: [{ name: "db0", sizeBytes: 1024 * 1024, epoch: 1 }],
    inflightBytesMax: 8192,
  });
  const opening = link.open();
  const conn = await accepted;
  const reader = new FrameReader(conn);
  try {
    assert.equal((await reader.next())?.type, FrameType.hello);
    await writeAll(
      conn,
      encodeJsonFrame(
        FrameType.welcome,
        { credit: 1024 * 1024, volumes: [{ name: "db0", created: false }] } satisfies LinkWelcome,
      ),
    );
    await opening;
    const write = (i: number) =>
      link.submit("db0", {
        kind: "write",
        offset: i * 4096,
        length: 4096,
        data: new Uint8Array(4096).fill(i + 1),
      });
    const submits: Promise<void>[] = [];
    // Two frames leave unacknowledged; the third write is then held in the queue, and the
    // fourth waits for room (queued bytes plus its own would pass 8 KiB).
    for (let i = 0; i < linkFramesAheadMax; i++) {
      submits.push(write(i));
      await reader.next();
    }
    submits.push(write(2), write(3));
    await new Promise((resolve) => setTimeout(resolve, 0));
    assert.equal(unacked.view("db0").bytes, 4 * 4096, "sent, queued and waiting");
    await writeAll(conn, encodeAckFrame(FrameType.ack, linkFramesAheadMax, 1024 * 1024));
    // The held and the waiting write leave once acks come; each frame is acknowledged.
    let records = linkFramesAheadMax;
    while (records < 4) {
      const frame = (await reader.next())!;
      records += recordsIn(frame).length;
      await writeAll(conn, encodeAckFrame(FrameType.ack, frame.sequence, 1024 * 1024));
    }
    await Promise.all(submits);
    assert.equal(link.recordsSent, 4);
    assert.equal(unacked.view("db0").bytes, 0);
  } finally {
    await link.close();
    conn.close();
    listener.close();
  }
});
