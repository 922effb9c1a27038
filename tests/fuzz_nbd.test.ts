/**
 * Fuzzing the NBD handshake and transmission parsers (host/nbd/handshake.ts, reader.ts,
 * request.ts, transmission.ts) with fast-check, in memory: client byte streams made of valid
 * pieces, oversized lengths, unknown options and commands, bad magic and garbage, then mutated
 * (bit flips, cuts, inserted bytes) and delivered in random read sizes. Each stream is checked
 * against a reference model (support/nbd_model.ts): the server must never throw, must send exactly
 * the replies and errors proto.md documents, and must change the device only for valid requests.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { negotiate } from "../host/nbd/handshake.ts";
import { SocketReader } from "../host/nbd/reader.ts";
import { Transmission } from "../host/nbd/transmission.ts";
import { ReplyWriter } from "../host/nbd/writer.ts";
import { fuzz } from "./support/fuzz.ts";
import { MemoryDevice, RecordingDevice } from "./support/memory_device.ts";
import { type ModelOutcome, modelServe } from "./support/nbd_model.ts";

const exportName = "db0";
/** The export is as large as the largest request, so no TRIM / WRITE_ZEROES is ever split. */
const sizeBytes = 16 * 1024;
const requestBytesMax = 16 * 1024;
/** Smaller than the server's 256 KiB, so payloads also take the direct-read path. */
const readerBytes = 40 * 1024;

const be32 = (n: number) => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n >>> 0);
  return b;
};
const concat = (parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};
const utf8 = new TextEncoder();

// ---- generators of client streams

const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
const bytes = (maxLength: number) => fc.uint8Array({ maxLength });

const optionFrame = (option: number, data: Uint8Array, magic = 0x49484156454f5054n) => {
  const h = new Uint8Array(16);
  const v = new DataView(h.buffer);
  v.setBigUint64(0, magic);
  v.setUint32(8, option);
  v.setUint32(12, data.length);
  return concat([h, data]);
};

const names = fc.oneof(
  fc.constant(utf8.encode(exportName)),
  fc.constant(utf8.encode("nope")),
  fc.constant(new Uint8Array([0x64, 0, 0x62])), // NUL inside
  fc.constant(new Uint8Array([0xff, 0xfe])), // not UTF-8
  fc.constant(new Uint8Array(4097).fill(0x61)), // over 4096 bytes
  bytes(12),
);

/** NBD_OPT_INFO / GO data: well formed, or with a count or name length that lies. */
const infoData = fc.tuple(
  names,
  fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 3 }),
  fc.nat(3),
)
  .map(([name, infos, lie]) => {
    const b = new Uint8Array(4 + name.length + 2 + 2 * infos.length);
    const v = new DataView(b.buffer);
    v.setUint32(0, name.length + (lie === 1 ? 1 : 0));
    b.set(name, 4);
    v.setUint16(4 + name.length, infos.length + (lie === 2 ? 1 : 0));
    infos.forEach((t, i) => v.setUint16(4 + name.length + 2 + 2 * i, t));
    return b;
  });

const option = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.tuple(fc.constantFrom(6, 7), infoData).map(([o, d]) => optionFrame(o, d)),
  },
  {
    weight: 2,
    arbitrary: fc.tuple(fc.constantFrom(3, 8), fc.oneof(fc.constant(new Uint8Array(0)), bytes(8)))
      .map(([o, d]) => optionFrame(o, d)),
  },
  { weight: 1, arbitrary: names.map((n) => optionFrame(1, n)) },
  { weight: 1, arbitrary: fc.constant(optionFrame(2, new Uint8Array(0))) },
  {
    weight: 2,
    arbitrary: fc.tuple(fc.oneof(fc.constantFrom(4, 5, 9, 10, 11), u32), bytes(16)).map(([o, d]) =>
      optionFrame(o, d)
    ),
  },
  // Over the 16 KiB option bound: answered ERR_TOO_BIG after the data is skipped.
  {
    weight: 1,
    arbitrary: fc.tuple(
      fc.constantFrom(1, 6, 7, 99),
      fc.integer({ min: 16 * 1024 + 1, max: 20 * 1024 }),
    ).map(([o, n]) => optionFrame(o, new Uint8Array(n))),
  },
  {
    weight: 1,
    arbitrary: fc.tuple(u32, bytes(8)).map(([o, d]) => optionFrame(o, d, 0x49484156454f5055n)),
  },
);

const goStructured = fc.boolean().map((s) =>
  concat([
    s ? optionFrame(8, new Uint8Array(0)) : new Uint8Array(0),
    optionFrame(7, infoRequestData(exportName)),
  ])
);

function infoRequestData(name: string): Uint8Array {
  const n = utf8.encode(name);
  const b = new Uint8Array(4 + n.length + 2);
  new DataView(b.buffer).setUint32(0, n.length);
  b.set(n, 4);
  return b;
}

const offsets = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 0, max: sizeBytes - 4096 }) },
  { weight: 1, arbitrary: fc.integer({ min: sizeBytes - 4096, max: sizeBytes }) },
  { weight: 1, arbitrary: fc.constantFrom(2 ** 53, 2 ** 53 + 2, 2 ** 64 - 1, 2 ** 63) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 2 ** 48 }) },
);
const lengths = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 0, max: 4096 }) },
  { weight: 2, arbitrary: fc.integer({ min: requestBytesMax - 2, max: requestBytesMax + 2 }) },
  // Over the maximum with the whole payload sent: refused, drained, answered.
  { weight: 2, arbitrary: fc.integer({ min: requestBytesMax + 1, max: 3 * requestBytesMax }) },
  // Far over, the client gives up mid-payload: no reply, nothing written.
  { weight: 1, arbitrary: fc.constantFrom(0xffff_ffff, 2 ** 31, 64 * 1024 * 1024) },
);
const commands = fc.oneof(
  { weight: 12, arbitrary: fc.constantFrom(0, 1, 1, 1, 3, 4, 6) },
  { weight: 1, arbitrary: fc.constantFrom(2, 5, 7, 8) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xffff }) },
);
const cmdFlags = fc.oneof(
  { weight: 12, arbitrary: fc.constant(0) },
  { weight: 3, arbitrary: fc.constantFrom(1, 2, 3, 4, 8, 16) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xffff }) },
);
const request = fc.record({
  type: commands,
  flags: cmdFlags,
  offset: offsets,
  length: lengths,
  magicOk: fc.oneof({ weight: 30, arbitrary: fc.constant(true) }, {
    weight: 1,
    arbitrary: fc.constant(false),
  }),
  fill: fc.integer({ min: 1, max: 255 }),
});

type Req = typeof request extends fc.Arbitrary<infer T> ? T : never;

function requestBytes(r: Req, cookie: number): Uint8Array {
  const h = new Uint8Array(28);
  const v = new DataView(h.buffer);
  v.setUint32(0, r.magicOk ? 0x25609513 : 0x25609514);
  v.setUint16(4, r.flags);
  v.setUint16(6, r.type);
  v.setBigUint64(8, BigInt(cookie) * 0x1_0000_0001n);
  v.setBigUint64(16, BigInt(r.offset));
  v.setUint32(24, r.length);
  // Payloads beyond 3 * requestBytesMax are never sent whole: the stream ends inside them.
  const payload = r.type === 1 ? Math.min(r.length, 3 * requestBytesMax + 7) : 0;
  return concat([h, new Uint8Array(payload).fill(r.fill + cookie)]);
}

/** One mutation of a stream: flip a bit, overwrite a byte, cut the stream, insert garbage. */
const mutation = fc.record({
  kind: fc.constantFrom("flip", "byte", "cut", "insert"),
  at: fc.noBias(fc.integer({ min: 0, max: 999_999 })).map((n) => n / 1e6),
  value: fc.integer({ min: 0, max: 255 }),
  garbage: bytes(40),
});

type Mutation = typeof mutation extends fc.Arbitrary<infer T> ? T : never;

function mutate(stream: Uint8Array, ms: readonly Mutation[]): Uint8Array {
  let s = stream;
  for (const m of ms) {
    if (s.length === 0) break;
    const at = Math.min(s.length - 1, Math.floor(m.at * s.length));
    if (m.kind === "flip") s[at] ^= 1 << (m.value & 7);
    else if (m.kind === "byte") s[at] = m.value;
    else if (m.kind === "cut") s = s.slice(0, at);
    else s = concat([s.subarray(0, at), m.garbage, s.subarray(at)]);
  }
  return s;
}

const stream = fc.record({
  clientFlags: fc.oneof({ weight: 20, arbitrary: fc.constantFrom(1, 3, 0, 2) }, {
    weight: 1,
    arbitrary: u32,
  }),
  options: fc.array(option, { maxLength: 3 }),
  enter: fc.oneof(
    { weight: 6, arbitrary: goStructured },
    { weight: 1, arbitrary: fc.constant(optionFrame(1, utf8.encode(exportName))) },
    { weight: 1, arbitrary: fc.constant(new Uint8Array(0)) },
  ),
  requests: fc.array(request, { maxLength: 14 }),
  mutations: fc.oneof(
    { weight: 5, arbitrary: fc.constant([]) },
    { weight: 2, arbitrary: fc.array(mutation, { minLength: 1, maxLength: 4 }) },
  ),
  chunks: fc.array(fc.integer({ min: 1, max: 9000 }), { minLength: 1, maxLength: 6 }),
}).map((s) => {
  const clean = concat([
    be32(s.clientFlags),
    ...s.options,
    s.enter,
    ...s.requests.map((r, i) => requestBytes(r, i + 1)),
  ]);
  return { input: mutate(clean, s.mutations), chunks: s.chunks };
});

// ---- the server, in memory

/** Delivers `input` in reads of the sizes in `chunks` (cycled), then end of stream. */
function source(input: Uint8Array, chunks: number[]) {
  let pos = 0;
  let i = 0;
  return {
    read(p: Uint8Array): Promise<number | null> {
      if (pos >= input.length) return Promise.resolve(null);
      const n = Math.min(p.length, chunks[i++ % chunks.length], input.length - pos);
      p.set(input.subarray(pos, pos + n));
      pos += n;
      return Promise.resolve(n);
    },
  };
}

/** Runs one connection through the real handshake and transmission code; returns what it sent. */
async function serve(input: Uint8Array, chunks: number[], device: RecordingDevice) {
  const sent: Uint8Array[] = [];
  const sink = (b: Uint8Array) => {
    sent.push(b.slice());
    return Promise.resolve(b.length);
  };
  const logs: string[] = [];
  const reader = new SocketReader(source(input, chunks), readerBytes);
  const result = await negotiate(reader, async (b) => void await sink(b), {
    lookup: (n) => n === exportName ? device : undefined,
    listExports: () => [exportName],
    requestBytesMax,
    log: (m) => logs.push(m),
  });
  const handshakeBytes = sent.reduce((n, b) => n + b.length, 0);
  if (result.kind === "transmission") {
    const writer = new ReplyWriter({ write: sink }, (err) => {
      throw err;
    });
    await new Transmission(reader, writer, () => {}, {
      exportName,
      device,
      structured: result.structured,
      requestBytesMax,
      inflightMax: 8,
      inflightBytesMax: 64 * 1024,
      log: (m) => logs.push(m),
    }).run();
  }
  return { out: concat(sent), handshakeBytes, result, logs };
}

// ---- reading what the server sent, checked against the model

function checkAgainstModel(out: Uint8Array, model: ModelOutcome): void {
  const v = new DataView(out.buffer, out.byteOffset, out.byteLength);
  assert.ok(out.length >= 18, "greeting missing");
  assert.equal(v.getBigUint64(0), 0x4e42444d41474943n);
  assert.equal(v.getBigUint64(8), 0x49484156454f5054n);
  let pos = 18;
  for (const want of model.optionReplies) {
    assert.ok(pos + 20 <= out.length, `option reply ${want.option}/${want.type} missing`);
    assert.equal(v.getBigUint64(pos), 0x3e889045565a9n);
    assert.deepEqual(
      { option: v.getUint32(pos + 8), type: v.getUint32(pos + 12) },
      want,
      "option reply",
    );
    const len = v.getUint32(pos + 16);
    if (want.type === 3) { // NBD_REP_INFO: the export's size and the maximum block size
      const info = v.getUint16(pos + 20);
      if (info === 0) assert.equal(Number(v.getBigUint64(pos + 22)), sizeBytes);
      if (info === 3) assert.equal(v.getUint32(pos + 30), requestBytesMax);
    }
    pos += 20 + len;
  }
  if (model.entered?.via === "export-name") {
    assert.equal(Number(v.getBigUint64(pos)), sizeBytes);
    pos += 10 + (model.entered.noZeroes ? 0 : 124);
  }
  // Transmission replies: any order, matched by cookie and error.
  const pending = [...model.replies];
  while (pos < out.length) {
    const magic = v.getUint32(pos);
    let cookie: bigint, error: number, data: Uint8Array | undefined;
    if (magic === 0x67446698) {
      error = v.getUint32(pos + 4);
      cookie = v.getBigUint64(pos + 8);
      pos += 16;
      const want = pending.find((r) => r.cookie === cookie && r.error === error);
      assert.ok(want, `unexpected simple reply cookie ${cookie} error ${error}`);
      if (want.data) {
        data = out.slice(pos, pos + want.data.length);
        pos += want.data.length;
      }
    } else {
      assert.equal(magic, 0x668e33ef, `bad reply magic at byte ${pos}`);
      assert.ok(model.entered?.structured, "structured reply without negotiation");
      const flags = v.getUint16(pos + 4);
      const type = v.getUint16(pos + 6);
      cookie = v.getBigUint64(pos + 8);
      const len = v.getUint32(pos + 16);
      assert.equal(flags & 1, 1, "every reply is a single chunk marked DONE");
      const payload = out.subarray(pos + 20, pos + 20 + len);
      pos += 20 + len;
      if (type === 1) {
        error = 0;
        data = payload.slice(8);
      } else {
        assert.ok(type & 0x8000, `chunk type ${type}`);
        error = new DataView(payload.buffer, payload.byteOffset).getUint32(0);
        assert.ok(new DataView(payload.buffer, payload.byteOffset).getUint16(4) > 0, "message");
      }
    }
    const i = pending.findIndex((r) => r.cookie === cookie && r.error === error);
    assert.ok(i >= 0, `unexpected reply cookie ${cookie} error ${error}`);
    if (pending[i].data) assert.deepEqual(data, pending[i].data, `read data of cookie ${cookie}`);
    pending.splice(i, 1);
  }
  assert.deepEqual(pending, [], "replies the server never sent");
}

Deno.test({
  name:
    "fuzz: NBD streams get exactly the documented replies and change only what valid requests ask",
  sanitizeOps: true,
  async fn() {
    await fuzz(
      "nbd streams",
      fc.asyncProperty(stream, async ({ input, chunks }) => {
        const mem = new MemoryDevice(sizeBytes, (b) => b.fill(0x5a));
        const initial = mem.bytes.slice();
        const device = new RecordingDevice(mem);
        const { out } = await serve(input, chunks, device);
        const model = modelServe(input, { name: exportName, sizeBytes }, requestBytesMax, initial);
        checkAgainstModel(out, model);
        const changes = device.calls.filter((c) => c.op !== "read" && c.op !== "flush").length;
        assert.equal(changes, model.changes, "device changes");
        assert.deepEqual(mem.bytes, model.image, "device image");
      }),
      3000,
    );
  },
});

Deno.test("fuzz: pure random bytes never crash the server nor reach the device", async () => {
  await fuzz(
    "nbd random bytes",
    fc.asyncProperty(
      fc.uint8Array({ maxLength: 600 }),
      fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 4 }),
      async (input, chunks) => {
        const mem = new MemoryDevice(sizeBytes);
        const device = new RecordingDevice(mem);
        const { out } = await serve(input, chunks, device);
        const model = modelServe(
          input,
          { name: exportName, sizeBytes },
          requestBytesMax,
          mem.bytes,
        );
        checkAgainstModel(out, model);
        assert.equal(device.wrote, model.changes > 0);
      },
    ),
    2000,
  );
});
