/**
 * The link's large-frame paths: a frame sealed in pieces (the host sends a large record's payload
 * from its own buffer) is byte for byte the frame encoded whole, and the reader takes a large
 * frame's payload straight into its own buffer, then only a header, and fails cleanly on a cut or
 * a corrupt byte inside it.
 */
import assert from "node:assert/strict";
import {
  ackCredit,
  encodeAckFrame,
  encodeFrame,
  type Frame,
  frameReadDirectBytesMin,
  FrameReader,
  FrameType,
  linkFrameHeaderBytes,
  sealFramePieces,
} from "../src/link_protocol.ts";
import { concatBytes } from "../src/bytes.ts";

/** Bytes counting up from `seed`, so a misplaced slice shows. */
function pattern(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (i * 13 + seed) & 0xff;
  return out;
}

/** A stream source handing out at most `chunkBytes` a read; records every read's target. */
function chunkedConn(stream: Uint8Array, chunkBytes: number) {
  let at = 0;
  const reads: Uint8Array[] = [];
  return {
    reads,
    read(p: Uint8Array): Promise<number | null> {
      reads.push(p);
      if (at >= stream.length) return Promise.resolve(null);
      const n = Math.min(p.length, chunkBytes, stream.length - at);
      p.set(stream.subarray(at, at + n));
      at += n;
      return Promise.resolve(n);
    },
  };
}

Deno.test("a frame sealed in pieces is byte for byte the frame encoded whole", async (t) => {
  const payload = pattern(3 * frameReadDirectBytesMin + 5, 1);
  const whole = encodeFrame(FrameType.records, 77, payload);
  const cases: { name: string; cuts: number[] }[] = [
    { name: "header alone, then the payload", cuts: [0] },
    { name: "header with a prefix, a large middle, a suffix", cuts: [100, 100 + 2 * 65536] },
    { name: "header with all of the payload", cuts: [payload.length] },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      const head = new Uint8Array(linkFrameHeaderBytes + c.cuts[0]);
      head.set(payload.subarray(0, c.cuts[0]), linkFrameHeaderBytes);
      const pieces: Uint8Array[] = [head];
      const bounds = [...c.cuts, payload.length];
      for (let i = 0; i + 1 < bounds.length; i++) {
        pieces.push(payload.subarray(bounds[i], bounds[i + 1]));
      }
      sealFramePieces(pieces, FrameType.records, 77);
      assert.deepEqual(concatBytes(pieces), whole);
    });
  }
  assert.throws(
    () => sealFramePieces([new Uint8Array(10)], FrameType.records, 1),
    /holds no header/,
  );
});

Deno.test("a large frame is read straight into its payload buffer, then only the next header", async () => {
  const large = pattern(5 * frameReadDirectBytesMin, 3);
  const stream = concatBytes([
    encodeAckFrame(FrameType.ack, 1, 5),
    encodeFrame(FrameType.records, 1, large),
    encodeFrame(FrameType.records, 2, large.subarray(1)),
    encodeAckFrame(FrameType.ack, 2, 6),
  ]);
  const chunkBytes = 7001;
  const conn = chunkedConn(stream, chunkBytes);
  const allocated: Uint8Array[] = [];
  const reader = new FrameReader(conn, (bytes) => {
    const b = new Uint8Array(bytes);
    allocated.push(b);
    return b;
  });
  assert.equal(ackCredit((await reader.next())!), 5);
  const first = (await reader.next())!;
  const second = (await reader.next())!;
  assert.equal(ackCredit((await reader.next())!), 6);
  assert.equal(await reader.next(), null);

  assert.equal(reader.directFrames, 2);
  for (const [frame, seq, bytes] of [[first, 1, large], [second, 2, large.subarray(1)]] as const) {
    assert.equal(frame.sequence, seq);
    assert.deepEqual(frame.payload, bytes);
    // The payload is the buffer handed out, and most of it was read into it directly.
    assert.ok(allocated.includes(frame.payload), `frame ${seq} payload was not allocated`);
    const direct = conn.reads.filter((p) => p.buffer === frame.payload.buffer).length;
    assert.ok(direct >= Math.floor(bytes.length / chunkBytes) - 1, `${direct} reads direct`);
  }
  // After a frame read directly the next read asks for a header, so no payload lands in the
  // shared buffer to be copied: the second frame arrived by direct reads alone.
  const afterFirst = conn.reads.findIndex((p) => p.buffer === second.payload.buffer);
  assert.equal(conn.reads[afterFirst - 1].length, linkFrameHeaderBytes);
});

Deno.test("a stream cut inside a large frame, or a corrupt byte in it, fails the read", async (t) => {
  const frame = encodeFrame(FrameType.records, 1, pattern(2 * frameReadDirectBytesMin, 9));
  const read = async (stream: Uint8Array): Promise<Frame | null> => {
    const reader = new FrameReader(chunkedConn(stream, 5000));
    return await reader.next();
  };
  await t.step("cut after part of the payload", async () => {
    await assert.rejects(
      read(frame.subarray(0, frame.length - 1000)),
      /Stream ended inside a frame/,
    );
  });
  await t.step("cut right after the header", async () => {
    await assert.rejects(read(frame.subarray(0, linkFrameHeaderBytes)), /Stream ended inside/);
  });
  await t.step("a payload byte flipped far past the first read", async () => {
    const bad = frame.slice();
    bad[bad.length - 3] ^= 0x10;
    await assert.rejects(read(bad), /Frame checksum mismatch/);
  });
  await t.step("the same frame whole reads back", async () => {
    assert.deepEqual((await read(frame))!.payload, frame.subarray(linkFrameHeaderBytes));
  });
});
