/**
 * Client byte streams for the NBD fuzzer (tests/fuzz_nbd.test.ts): a client flags word, a few
 * options (valid, malformed, unknown, oversized, bad magic), the choice of an export, requests
 * (every command, odd flags, offsets past the end or past 2^53, lengths over the maximum with the
 * payload sent or cut), then maybe a few mutations (bit flips, bytes, cuts, inserted garbage), and
 * the read sizes the stream is delivered in.
 */
import fc from "fast-check";
import { concatBytes } from "../../src/bytes.ts";

/** The export every stream is for, and its bounds. */
export const exportName = "db0";
/** The export is as large as the largest request, so no TRIM / WRITE_ZEROES is ever split. */
export const sizeBytes = 16 * 1024;
export const requestBytesMax = 16 * 1024;

const be32 = (n: number) => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n >>> 0);
  return b;
};
export const concat = concatBytes;
const utf8 = new TextEncoder();

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

/** NBD_OPT_LIST / SET_META_CONTEXT data: a name, then queries (known, wildcard, unknown, bad). */
const metaContextData = fc.tuple(
  names,
  fc.array(
    fc.oneof(
      fc.constantFrom("base:allocation", "base:", "trackmirror:dirty", "x-other:thing", "nocolon")
        .map((q) => utf8.encode(q)),
      names,
    ),
    { maxLength: 3 },
  ),
  fc.nat(3),
).map(([name, queries, lie]) =>
  concat([
    be32(name.length + (lie === 1 ? 1 : 0)),
    name,
    be32(queries.length + (lie === 2 ? 1 : 0)),
    ...queries.flatMap((q) => [be32(q.length), q]),
  ])
);

const option = fc.oneof(
  {
    weight: 2,
    arbitrary: fc.tuple(fc.constantFrom(9, 10), metaContextData).map(([o, d]) => optionFrame(o, d)),
  },
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

/** One client stream and the read sizes it arrives in. */
export const stream = fc.record({
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
