import assert from "node:assert/strict";
import {
  decodeRecord,
  type DecodeResult,
  encodedRecordBytes,
  encodeRecord,
  encodeRecordHead,
  type JournalRecord,
  recordHeaderBytes,
  recordMagic,
  recordVersion,
} from "../src/journal_record.ts";
import { recordPayloadBytesMax } from "../src/limits.ts";

/** A bit-at-a-time CRC-32 (IEEE, reflected), written apart from the codec to check its checksum. */
function referenceCrc32(bytes: Uint8Array): number {
  let crc = 0xffff_ffff;
  for (const b of bytes) {
    crc ^= b;
    for (let k = 0; k < 8; k++) crc = (crc >>> 1) ^ (0xedb8_8320 & -(crc & 1));
  }
  return (crc ^ 0xffff_ffff) >>> 0;
}

function pattern(length: number, seed = 1): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (i * 31 + seed * 7) & 0xff;
  return out;
}

function writeRecord(volume: string, offset: number, data: Uint8Array): JournalRecord {
  return { kind: "write", volume, offset, length: data.length, data };
}

function decoded(result: DecodeResult): { record: JournalRecord; next: number } {
  if (!result.ok) assert.fail(`expected a record, got: ${result.reason}`);
  return result;
}

function refused(result: DecodeResult, incomplete: boolean, reason: RegExp): void {
  assert.equal(result.ok, false, "expected the bytes to be refused");
  if (result.ok) return;
  assert.equal(result.incomplete, incomplete, result.reason);
  assert.match(result.reason, reason);
}

Deno.test("journal record round-trips write and zero records", async (t) => {
  const cases: [string, JournalRecord][] = [
    ["a one-byte write", writeRecord("v", 0, Uint8Array.of(0xab))],
    ["an unaligned 4 KiB write", writeRecord("db0", 12_345, pattern(4096))],
    [
      "a write at the largest safe offset",
      writeRecord("a.b-c_d", Number.MAX_SAFE_INTEGER, pattern(3)),
    ],
    ["a write with a 64-byte name", writeRecord("n".repeat(64), 1 << 30, pattern(100))],
    ["a zero record", {
      kind: "zero",
      volume: "db0",
      offset: 65536,
      length: 1 << 20,
      data: new Uint8Array(0),
    }],
    ["a zero record of 4 GiB - 1", {
      kind: "zero",
      volume: "db0",
      offset: 0,
      length: 0xffff_ffff,
      data: new Uint8Array(0),
    }],
  ];
  for (const [name, rec] of cases) {
    await t.step(name, () => {
      const bytes = encodeRecord(rec);
      assert.equal(bytes.length, encodedRecordBytes(rec.volume, rec.kind, rec.length));
      const { record, next } = decoded(decodeRecord(bytes, 0));
      assert.deepEqual(record, rec);
      assert.equal(next, bytes.length);
    });
  }
});

Deno.test("journal record layout is the documented little-endian header with zlib's CRC-32", () => {
  const bytes = encodeRecord(writeRecord("db0", 0x0102_0304_0506, Uint8Array.of(9, 8, 7)));
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  assert.equal(view.getUint32(0, true), recordMagic);
  assert.equal(new TextDecoder().decode(bytes.subarray(0, 4)), "TMJR");
  assert.equal(bytes[4], recordVersion);
  assert.equal(bytes[5], 1, "kind write");
  assert.equal(view.getUint16(6, true), 3);
  assert.equal(view.getBigUint64(8, true), 0x0102_0304_0506n);
  assert.equal(view.getUint32(16, true), 3);
  assert.equal(new TextDecoder().decode(bytes.subarray(24, 27)), "db0");
  assert.deepEqual([...bytes.subarray(27)], [9, 8, 7]);
  const covered = new Uint8Array([...bytes.subarray(0, 20), ...bytes.subarray(24)]);
  assert.equal(view.getUint32(20, true), referenceCrc32(covered));

  const zero = encodeRecord({ kind: "zero", volume: "v", offset: 0, length: 512 });
  assert.equal(zero[5], 2, "kind zero");
  assert.equal(zero.length, recordHeaderBytes + 1, "a zero record carries no payload");
});

Deno.test("journal record cut short anywhere is incomplete, not corrupt", () => {
  const bytes = encodeRecord(writeRecord("db0", 4096, pattern(50)));
  for (let cut = 0; cut < bytes.length; cut++) {
    const result = decodeRecord(bytes.subarray(0, cut), 0);
    assert.equal(result.ok, false, `cut at ${cut}`);
    assert.equal(!result.ok && result.incomplete, true, `cut at ${cut}: ${JSON.stringify(result)}`);
  }
});

Deno.test("journal record with any single flipped bit is refused", () => {
  const bytes = encodeRecord(writeRecord("db0", 4096, pattern(16)));
  for (let bit = 0; bit < bytes.length * 8; bit++) {
    const copy = bytes.slice();
    copy[bit >> 3] ^= 1 << (bit & 7);
    const result = decodeRecord(copy, 0);
    assert.equal(result.ok, false, `bit ${bit} (byte ${bit >> 3}) flipped, yet decoded`);
  }
});

Deno.test("journal record with a flipped bit fails its checksum", async (t) => {
  const rec = writeRecord("db0", 4096, pattern(17));
  const payloadAt = recordHeaderBytes + 3;
  const cases: [string, number, number][] = [
    ["in the low byte of the offset", 8, 0],
    ["in the offset", 9, 7],
    ["in the highest offset bit below 2^53", 14, 4],
    ["in the length, making it shorter", 16, 0],
    ["in the checksum itself", 20, 0],
    ["in the top bit of the checksum", 23, 7],
    ["in the name", recordHeaderBytes + 1, 5],
    ["in the first payload byte", payloadAt, 0],
    ["in the last payload byte", payloadAt + 16, 7],
  ];
  for (const [name, byte, bit] of cases) {
    await t.step(`${name} (byte ${byte}, bit ${bit})`, () => {
      const bytes = encodeRecord(rec);
      bytes[byte] ^= 1 << bit;
      refused(decodeRecord(bytes, 0), false, /^Record checksum mismatch at byte 0$/);
    });
  }
  await t.step("in a zero record's length", () => {
    const bytes = encodeRecord({ kind: "zero", volume: "db0", offset: 0, length: 4096 });
    bytes[17] ^= 0x40;
    refused(decodeRecord(bytes, 0), false, /^Record checksum mismatch/);
  });
});

Deno.test("journal record header faults are named", async (t) => {
  const bytes = () => encodeRecord(writeRecord("db0", 4096, pattern(8)));
  const cases: [string, (b: Uint8Array) => void, RegExp][] = [
    ["bad magic", (b) => (b[0] = 0), /^Bad record magic 0x524a4d00 at byte 0$/],
    ["bad version", (b) => (b[4] = 2), /^Unknown record version 2 at byte 0$/],
    ["version 0", (b) => (b[4] = 0), /^Unknown record version 0 /],
    ["unknown kind", (b) => (b[5] = 5), /^Unknown record kind 5 at byte 0$/],
    ["name length 0", (b) => (b[6] = 0), /^Bad volume name length 0 at byte 0$/],
    ["name length 65", (b) => (b[6] = 65), /^Bad volume name length 65 at byte 0$/],
    ["name length 256", (b) => (b[7] = 1), /^Bad volume name length 259 /],
    ["offset past 2^53", (b) => (b[15] = 0x80), /^Bad record range 9223372036854779904\+8 /],
    ["length 0", (b) => b.fill(0, 16, 20), /^Bad record range 4096\+0 at byte 0$/],
    [
      "write length past the payload bound",
      (b) => new DataView(b.buffer).setUint32(16, recordPayloadBytesMax + 1, true),
      /^Record length 33554433 exceeds 33554432$/,
    ],
  ];
  for (const [name, damage, reason] of cases) {
    await t.step(name, () => {
      const b = bytes();
      damage(b);
      refused(decodeRecord(b, 0), false, reason);
    });
  }
});

Deno.test("journal records back to back decode one after another, to a torn tail", () => {
  const recs: JournalRecord[] = [
    writeRecord("db0", 0, pattern(10, 1)),
    { kind: "zero", volume: "db1", offset: 1 << 20, length: 1 << 16, data: new Uint8Array(0) },
    writeRecord("db0", 777, pattern(33, 2)),
  ];
  const sizes = recs.map((r) => encodedRecordBytes(r.volume, r.kind, r.length));
  const tail = encodeRecord(writeRecord("db2", 5, pattern(40, 3)));
  const whole = sizes.reduce((a, b) => a + b, 0);
  // The sender's layout: every record encoded in place into one buffer, then a torn tail.
  const buf = new Uint8Array(whole + 30);
  let pos = 0;
  for (const r of recs) pos += encodeRecord(r, buf, pos).length;
  assert.equal(pos, whole);
  buf.set(tail.subarray(0, 30), pos);

  const got: JournalRecord[] = [];
  pos = 0;
  for (;;) {
    const result = decodeRecord(buf, pos);
    if (!result.ok) {
      assert.equal(result.incomplete, true, result.reason);
      assert.match(result.reason, new RegExp(`at byte ${whole} is cut short`));
      break;
    }
    assert.equal(result.record.data.buffer, buf.buffer, "data is a view, not a copy");
    got.push({ ...result.record, data: result.record.data.slice() });
    pos = result.next;
  }
  assert.equal(pos, whole);
  assert.deepEqual(got, recs);
});

Deno.test("journal record decoding names the byte where a damaged record sits", () => {
  const first = encodeRecord(writeRecord("db0", 0, pattern(5)));
  const second = encodeRecord(writeRecord("db0", 5, pattern(5)));
  second[second.length - 1] ^= 1;
  const buf = new Uint8Array([...first, ...second]);
  const ok = decoded(decodeRecord(buf, 0));
  refused(
    decodeRecord(buf, ok.next),
    false,
    new RegExp(`^Record checksum mismatch at byte ${first.length}$`),
  );
});

Deno.test("journal record encoding refuses what the decoder would refuse", async (t) => {
  const cases: [string, Parameters<typeof encodeRecord>[0], RegExp][] = [
    [
      "an empty name",
      writeRecord("", 0, pattern(1)),
      /^Volume name "" must be 1 to 64 ASCII bytes$/,
    ],
    ["a 65-byte name", writeRecord("n".repeat(65), 0, pattern(1)), /^Volume name "n{65}" must/],
    [
      "a non-ASCII name",
      writeRecord("völ", 0, pattern(1)),
      /^Volume name "völ" must be 1 to 64 ASCII/,
    ],
    ["a write whose length differs from its data", {
      kind: "write",
      volume: "v",
      offset: 0,
      length: 5,
      data: pattern(4),
    }, /^Write record length 5 differs from data 4$/],
    ["an empty write", writeRecord("v", 0, new Uint8Array(0)), /^Record length 0 must be from 1/],
    [
      "a zero of length 0",
      { kind: "zero", volume: "v", offset: 0, length: 0 },
      /^Record length 0 /,
    ],
    [
      "a zero of 4 GiB",
      { kind: "zero", volume: "v", offset: 0, length: 2 ** 32 },
      /^Record length 4294967296 /,
    ],
    [
      "a fractional length",
      { kind: "zero", volume: "v", offset: 0, length: 1.5 },
      /^Record length 1\.5 /,
    ],
    [
      "a negative offset",
      { kind: "zero", volume: "v", offset: -1, length: 1 },
      /^Record offset -1 must be/,
    ],
    [
      "an offset past 2^53",
      { kind: "zero", volume: "v", offset: 2 ** 53, length: 1 },
      /^Record offset 9007199254740992 /,
    ],
    ["a fractional offset", writeRecord("v", 0.5, pattern(1)), /^Record offset 0\.5 /],
    [
      "a write past the payload bound",
      writeRecord("v", 0, new Uint8Array(recordPayloadBytesMax + 1)),
      /^Record length 33554433 exceeds 33554432$/,
    ],
  ];
  for (const [name, rec, message] of cases) {
    await t.step(name, () => {
      assert.throws(() => encodeRecord(rec), (err: unknown) => {
        assert.ok(err instanceof RangeError, `expected a RangeError, got ${err}`);
        assert.match(err.message, message);
        return true;
      });
    });
  }
  await t.step("a write of exactly the payload bound", () => {
    const rec = writeRecord("v", 0, new Uint8Array(recordPayloadBytesMax));
    assert.equal(decoded(decodeRecord(encodeRecord(rec), 0)).record.length, recordPayloadBytesMax);
  });
});

Deno.test("a record head with its payload sent apart is the record encoded whole", () => {
  const data = pattern(70_000, 5);
  const rec = { kind: "write" as const, volume: "vol-7", offset: 3 * 4096, length: data.length };
  const whole = encodeRecord({ ...rec, data });
  const head = new Uint8Array(8 + recordHeaderBytes + rec.volume.length);
  const written = encodeRecordHead({ ...rec, data }, head, 8);
  assert.equal(written.length, recordHeaderBytes + rec.volume.length);
  const joined = new Uint8Array(whole.length);
  joined.set(written);
  joined.set(data, written.length);
  assert.deepEqual(joined, whole);
  const zero = { kind: "zero" as const, volume: "vol-7", offset: 0, length: 1 << 20 };
  assert.deepEqual(encodeRecordHead(zero, new Uint8Array(64), 0), encodeRecord(zero));
  assert.throws(
    () => encodeRecordHead({ ...rec, data: data.subarray(1) }, head, 0),
    /differs from data/,
  );
});
