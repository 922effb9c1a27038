/**
 * The link client's coalescing against a scripted backup on 127.0.0.1 that acknowledges only when
 * the test says so: with `linkFramesAheadMax` frames unacknowledged, records submitted one event-
 * loop step at a time (as HTTP writes arrive) wait for the next ack and leave in one frame.
 */
import assert from "node:assert/strict";
import { LinkClient, linkFramesAheadMax } from "../host/link/link_client.ts";
import { decodeRecord } from "../src/journal_record.ts";
import {
  encodeAckFrame,
  type Frame,
  FrameReader,
  FrameType,
  writeAll,
} from "../src/link_protocol.ts";
import { welcomeHello } from "./support/scripted_backup.ts";

/** Records in a RECORDS frame's payload. */
function recordsIn(frame: Frame): number {
  let n = 0;
  for (let pos = 0; pos < frame.payload.length; n++) {
    const d = decodeRecord(frame.payload, pos);
    assert.ok(d.ok, "the frame's records decode");
    pos = d.next;
  }
  return n;
}

/** One step of the event loop: every microtask and ready I/O callback runs first. */
function nextStep(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

Deno.test("with two frames unacknowledged, writes submitted one step apart wait for the ack and share a frame", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = listener.accept();
  const link = new LinkClient({
    address: `tcp://127.0.0.1:${listener.addr.port}`,
    hostId: "h1",
    ack: "durable",
    volumes: [{ name: "db0", sizeBytes: 1024 * 1024, epoch: 1 }],
  });
  const opening = link.open();
  const conn = await accepted;
  const reader = new FrameReader(conn);
  try {
    await welcomeHello(conn, reader, ["db0"]);
    await opening;
    const write = (i: number) =>
      link.submit("db0", {
        kind: "write",
        offset: i * 4096,
        length: 4096,
        data: new Uint8Array(4096),
      });
    const submits: Promise<void>[] = [];
    // The first frames leave at once, one record each: nothing was in flight.
    for (let i = 0; i < linkFramesAheadMax; i++) {
      submits.push(write(i));
      const frame = await reader.next();
      assert.deepEqual([frame?.type, frame?.sequence, recordsIn(frame!)], [
        FrameType.records,
        i + 1,
        1,
      ]);
    }
    // Three more, each in its own step of the event loop: held, since no ack came.
    for (let i = 0; i < 3; i++) {
      submits.push(write(linkFramesAheadMax + i));
      await nextStep();
    }
    assert.equal(link.framesSent, linkFramesAheadMax);
    // The ack of the first frame lets them go, together.
    await writeAll(conn, encodeAckFrame(FrameType.ack, 1, 1024 * 1024));
    const joined = await reader.next();
    assert.deepEqual([joined?.sequence, recordsIn(joined!)], [linkFramesAheadMax + 1, 3]);
    await writeAll(conn, encodeAckFrame(FrameType.ack, linkFramesAheadMax + 1, 1024 * 1024));
    await Promise.all(submits);
  } finally {
    await link.close();
    conn.close();
    listener.close();
  }
});
