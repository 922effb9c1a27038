/**
 * The link framing byte for byte: header layout, checksum coverage, corruption refused, and a
 * stream reader that reassembles frames split across reads.
 */
import assert from "node:assert/strict";
import { crc32 } from "node:zlib";
import {
  ackCredit,
  decodeFrame,
  encodeAckFrame,
  encodeFrame,
  encodeJsonFrame,
  frameJson,
  FrameReader,
  FrameType,
  linkFrameBytesMax,
} from "../src/link_protocol.ts";

Deno.test("a RECORDS frame has the documented little-endian header and checksum", () => {
  const payload = new Uint8Array([1, 2, 3, 4, 5]);
  const frame = encodeFrame(FrameType.records, 0x0102030405, payload);
  const expectedHeader = [
    0x54,
    0x4d,
    0x4c,
    0x46, // magic "TMLF"
    2, // version
    3, // type RECORDS
    0,
    0, // flags
    5,
    0,
    0,
    0, // payload length
  ];
  assert.deepEqual([...frame.subarray(0, 12)], expectedHeader);
  assert.deepEqual([...frame.subarray(16, 24)], [5, 4, 3, 2, 1, 0, 0, 0]);
  assert.deepEqual([...frame.subarray(24)], [1, 2, 3, 4, 5]);
  const covered = new Uint8Array([...frame.subarray(0, 12), ...frame.subarray(16)]);
  const crc = new DataView(frame.buffer).getUint32(12, true);
  assert.equal(crc, crc32(covered));
  const decoded = decodeFrame(frame, 0);
  assert.ok(decoded.ok);
  assert.equal(decoded.frame.sequence, 0x0102030405);
  assert.equal(decoded.next, frame.length);
  assert.deepEqual([...decoded.frame.payload], [1, 2, 3, 4, 5]);
});

Deno.test("ack frames carry a cumulative sequence and the credit", () => {
  const frame = encodeAckFrame(FrameType.hardened, 77, 32 * 1024 * 1024);
  const decoded = decodeFrame(frame, 0);
  assert.ok(decoded.ok);
  assert.equal(decoded.frame.type, FrameType.hardened);
  assert.equal(decoded.frame.sequence, 77);
  assert.equal(ackCredit(decoded.frame), 32 * 1024 * 1024);
});

Deno.test("a flipped bit anywhere in a frame is refused", () => {
  const frame = encodeJsonFrame(FrameType.hello, { hostId: "h1", ack: "durable", volumes: [] });
  for (let byte = 0; byte < frame.length; byte++) {
    const bad = frame.slice();
    bad[byte] ^= 0x10;
    const decoded = decodeFrame(bad, 0);
    // A flip in the length field may instead make the frame look incomplete; never accepted.
    assert.equal(decoded.ok, false, `flip at byte ${byte} was accepted`);
  }
});

Deno.test("a frame cut short is incomplete, and an oversized length is refused", () => {
  const frame = encodeFrame(FrameType.records, 1, new Uint8Array(100));
  const cut = decodeFrame(frame.subarray(0, 50), 0);
  assert.deepEqual(cut, { ok: false, incomplete: true });
  const big = frame.slice();
  new DataView(big.buffer).setUint32(8, linkFrameBytesMax + 1, true);
  const decoded = decodeFrame(big, 0);
  assert.ok(!decoded.ok && !decoded.incomplete);
  assert.match(decoded.reason, /exceeds linkFrameBytesMax/);
});

Deno.test("the frame reader reassembles frames split across reads", async () => {
  const frames = [
    encodeJsonFrame(FrameType.welcome, { credit: 5, volumes: [] }),
    encodeFrame(FrameType.records, 1, new Uint8Array(300_000).fill(7)),
    encodeAckFrame(FrameType.ack, 1, 9),
  ];
  const stream = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
  let pos = 0;
  for (const f of frames) {
    stream.set(f, pos);
    pos += f.length;
  }
  let at = 0;
  const conn = {
    read(p: Uint8Array): Promise<number | null> {
      if (at >= stream.length) return Promise.resolve(null);
      const n = Math.min(p.length, 7001, stream.length - at);
      p.set(stream.subarray(at, at + n));
      at += n;
      return Promise.resolve(n);
    },
  };
  const reader = new FrameReader(conn);
  const a = await reader.next();
  assert.deepEqual(frameJson(a!), { credit: 5, volumes: [] });
  const b = await reader.next();
  assert.equal(b!.payload.length, 300_000);
  assert.ok(b!.payload.every((x) => x === 7));
  const c = await reader.next();
  assert.equal(ackCredit(c!), 9);
  assert.equal(await reader.next(), null);
});
