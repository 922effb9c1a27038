/**
 * The NBD wire format byte for byte. Expected bytes are written out from the spec
 * (NetworkBlockDevice/nbd doc/proto.md), not produced by the code under test.
 */
import assert from "node:assert/strict";
import {
  describeParseError,
  encodeExportNameReply,
  encodeGreeting,
  encodeInfoBlockSize,
  encodeInfoExport,
  encodeOffsetDataHeader,
  encodeOptionError,
  encodeOptionReply,
  encodeServerEntry,
  encodeSimpleReply,
  encodeStructuredError,
  encodeStructuredNone,
  NbdCmd,
  NbdError,
  NbdFlag,
  NbdOpt,
  NbdRep,
  NbdReplyType,
  parseClientFlags,
  parseInfoRequest,
  parseOptionHeader,
  parseRequestHeader,
  parseString,
  truncateUtf8,
} from "../host/nbd/protocol.ts";

const bytes = (...parts: (number | string | number[])[]) =>
  new Uint8Array(
    parts.flatMap((p) =>
      typeof p === "string" ? [...new TextEncoder().encode(p)] : Array.isArray(p) ? p : [p]
    ),
  );
const dv = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);

// Magic numbers as they appear on the wire.
const NBDMAGIC = [0x4e, 0x42, 0x44, 0x4d, 0x41, 0x47, 0x49, 0x43]; // "NBDMAGIC"
const IHAVEOPT = [0x49, 0x48, 0x41, 0x56, 0x45, 0x4f, 0x50, 0x54]; // "IHAVEOPT"
const REPLY_MAGIC = [0x00, 0x03, 0xe8, 0x89, 0x04, 0x55, 0x65, 0xa9];
const REQUEST = [0x25, 0x60, 0x95, 0x13];
const SIMPLE = [0x67, 0x44, 0x66, 0x98];
const STRUCTURED = [0x66, 0x8e, 0x33, 0xef];

Deno.test("constants carry the spec's values", () => {
  assert.equal(NbdOpt.EXPORT_NAME, 1);
  assert.equal(NbdOpt.GO, 7);
  assert.equal(NbdOpt.STRUCTURED_REPLY, 8);
  assert.equal(NbdRep.ERR_UNSUP, 2 ** 31 + 1);
  assert.equal(NbdRep.ERR_UNKNOWN, 2 ** 31 + 6);
  assert.equal(NbdCmd.WRITE_ZEROES, 6);
  assert.equal(NbdFlag.CAN_MULTI_CONN, 256);
  assert.equal(NbdReplyType.ERROR, 32769);
  assert.deepEqual(
    [NbdError.EIO, NbdError.EINVAL, NbdError.ENOSPC, NbdError.EOVERFLOW, NbdError.ESHUTDOWN],
    [5, 22, 28, 75, 108],
  );
});

Deno.test("greeting is NBDMAGIC, IHAVEOPT and the handshake flags", () => {
  assert.deepEqual(encodeGreeting(3), bytes(NBDMAGIC, IHAVEOPT, [0x00, 0x03]));
});

Deno.test("option reply: magic, option, type, length, data", () => {
  assert.deepEqual(
    encodeOptionReply(NbdOpt.STRUCTURED_REPLY, NbdRep.ACK),
    bytes(REPLY_MAGIC, [0, 0, 0, 8], [0, 0, 0, 1], [0, 0, 0, 0]),
  );
  assert.deepEqual(
    encodeOptionError(4711, NbdRep.ERR_UNSUP, "no"),
    bytes(REPLY_MAGIC, [0, 0, 0x12, 0x67], [0x80, 0, 0, 1], [0, 0, 0, 2], "no"),
  );
});

Deno.test("NBD_REP_SERVER data is the name's length and the name", () => {
  assert.deepEqual(encodeServerEntry("db0"), bytes([0, 0, 0, 3], "db0"));
});

Deno.test("NBD_INFO_EXPORT and NBD_INFO_BLOCK_SIZE payloads", () => {
  assert.deepEqual(
    encodeInfoExport(2 ** 40 + 5, 0x0165),
    bytes([0, 0], [0, 0, 0x01, 0, 0, 0, 0, 5], [0x01, 0x65]),
  );
  assert.deepEqual(
    encodeInfoBlockSize(1, 4096, 32 * 1024 * 1024),
    bytes([0, 3], [0, 0, 0, 1], [0, 0, 0x10, 0], [0x02, 0, 0, 0]),
  );
});

Deno.test("NBD_OPT_EXPORT_NAME reply has 124 zeroes unless NO_ZEROES", () => {
  const short = encodeExportNameReply(65536, 0x0001, true);
  assert.deepEqual(short, bytes([0, 0, 0, 0, 0, 1, 0, 0], [0, 1]));
  const long = encodeExportNameReply(65536, 0x0001, false);
  assert.equal(long.length, 134);
  assert.deepEqual(long.subarray(0, 10), short);
  assert.ok(long.subarray(10).every((b) => b === 0));
});

Deno.test("simple reply: magic, error, cookie", () => {
  assert.deepEqual(
    encodeSimpleReply(NbdError.EINVAL, 0x0102030405060708n),
    bytes(SIMPLE, [0, 0, 0, 22], [1, 2, 3, 4, 5, 6, 7, 8]),
  );
});

Deno.test("structured OFFSET_DATA header: flags, type, cookie, length 8+data, offset", () => {
  assert.deepEqual(
    encodeOffsetDataHeader(9n, 0x1_0000_0200, 512, true),
    bytes(
      STRUCTURED,
      [0, 1], // NBD_REPLY_FLAG_DONE
      [0, 1], // NBD_REPLY_TYPE_OFFSET_DATA
      [0, 0, 0, 0, 0, 0, 0, 9],
      [0, 0, 0x02, 0x08], // 8 + 512
      [0, 0, 0, 1, 0, 0, 0x02, 0],
    ),
  );
  assert.deepEqual(encodeOffsetDataHeader(9n, 0, 1, false).subarray(4, 6), bytes([0, 0]));
});

Deno.test("structured NONE and ERROR chunks", () => {
  assert.deepEqual(
    encodeStructuredNone(1n),
    bytes(STRUCTURED, [0, 1], [0, 0], [0, 0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0]),
  );
  assert.deepEqual(
    encodeStructuredError(2n, NbdError.EIO, "bad"),
    bytes(
      STRUCTURED,
      [0, 1],
      [0x80, 0x01],
      [0, 0, 0, 0, 0, 0, 0, 2],
      [0, 0, 0, 9], // 4 error + 2 length + 3 message
      [0, 0, 0, 5],
      [0, 3],
      "bad",
    ),
  );
});

Deno.test("client flags: FIXED_NEWSTYLE and NO_ZEROES accepted, any other bit refused", () => {
  assert.deepEqual(parseClientFlags(bytes([0, 0, 0, 3])), { ok: true, value: 3 });
  assert.deepEqual(parseClientFlags(bytes([0, 0, 0, 0])), { ok: true, value: 0 });
  assert.deepEqual(parseClientFlags(bytes([0, 0, 0, 4])), {
    ok: false,
    error: { kind: "unknown-client-flags", flags: 4 },
  });
  assert.deepEqual(parseClientFlags(bytes([0, 0, 3])), {
    ok: false,
    error: { kind: "short", needBytes: 4, haveBytes: 3 },
  });
});

Deno.test("option header: IHAVEOPT, option, length", () => {
  assert.deepEqual(parseOptionHeader(bytes(IHAVEOPT, [0, 0, 0, 7], [0, 0, 1, 0])), {
    ok: true,
    value: { option: 7, length: 256 },
  });
  const bad = parseOptionHeader(bytes(NBDMAGIC, [0, 0, 0, 7], [0, 0, 0, 0]));
  assert.equal(bad.ok, false);
  assert.equal(!bad.ok && bad.error.kind, "bad-magic");
  assert.match(!bad.ok ? describeParseError(bad.error) : "", /0x4e42444d41474943/);
});

Deno.test("NBD_OPT_GO data: name, count, information types", async (t) => {
  await t.step("well formed", () => {
    assert.deepEqual(parseInfoRequest(bytes([0, 0, 0, 3], "db0", [0, 2], [0, 3], [0, 1])), {
      ok: true,
      value: { name: "db0", infoTypes: [3, 1] },
    });
    assert.deepEqual(parseInfoRequest(bytes([0, 0, 0, 0], [0, 0])), {
      ok: true,
      value: { name: "", infoTypes: [] },
    });
  });
  const invalid: [string, Uint8Array][] = [
    ["shorter than 6 bytes", bytes([0, 0, 0, 0], [0])],
    ["name longer than the data", bytes([0, 0, 0, 9], "db0", [0, 0])],
    ["count promises more than sent", bytes([0, 0, 0, 3], "db0", [0, 2], [0, 3])],
    ["trailing bytes", bytes([0, 0, 0, 3], "db0", [0, 0], [9])],
    ["NUL in the name", bytes([0, 0, 0, 3], "d", 0, "0", [0, 0])],
    ["invalid UTF-8", bytes([0, 0, 0, 2], [0xc3, 0x28], [0, 0])],
  ];
  for (const [what, data] of invalid) {
    await t.step(what, () => {
      const r = parseInfoRequest(data);
      assert.equal(r.ok, false);
      assert.equal(!r.ok && r.error.kind, "invalid");
    });
  }
});

Deno.test("strings longer than 4096 bytes are refused", () => {
  assert.equal(parseString(new Uint8Array(4096).fill(0x61)).ok, true);
  assert.equal(parseString(new Uint8Array(4097).fill(0x61)).ok, false);
});

Deno.test("request header: magic, flags, type, cookie, offset, length", async (t) => {
  await t.step("well formed, parsed in place at an offset of the buffer", () => {
    const buf = bytes(
      [0xee, 0xee], // bytes before the header
      REQUEST,
      [0, 1], // FUA
      [0, 1], // WRITE
      [0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 1],
      [0, 0, 0, 2, 0, 0, 0x10, 0], // 2^33 + 4096
      [0, 1, 0, 0], // 65536
    );
    assert.deepEqual(parseRequestHeader(dv(buf), 2), {
      ok: true,
      value: {
        flags: 1,
        type: 1,
        cookie: 0xdeadbeef00000001n,
        offset: 2 ** 33 + 4096,
        length: 65536,
      },
    });
  });
  await t.step("bad magic", () => {
    const buf = bytes([0x25, 0x60, 0x95, 0x14], new Array(24).fill(0));
    assert.deepEqual(parseRequestHeader(dv(buf)), {
      ok: false,
      error: { kind: "bad-magic", magic: 0x25609514n },
    });
  });
  await t.step("too short", () => {
    assert.deepEqual(parseRequestHeader(dv(bytes(REQUEST, new Array(20).fill(0)))), {
      ok: false,
      error: { kind: "short", needBytes: 28, haveBytes: 24 },
    });
  });
  await t.step("offsets beyond 2^53 are not safe integers", () => {
    const buf = bytes(REQUEST, [0, 0, 0, 0], new Array(8).fill(0), new Array(8).fill(0xff), [
      0,
      0,
      0,
      1,
    ]);
    const r = parseRequestHeader(dv(buf));
    assert.ok(r.ok);
    assert.equal(Number.isSafeInteger(r.value.offset), false);
  });
});

Deno.test("truncateUtf8 never cuts a character in half", () => {
  assert.deepEqual(truncateUtf8("aé", 2), bytes("a")); // é is 2 bytes
  assert.deepEqual(truncateUtf8("aé", 3), bytes("aé"));
});
