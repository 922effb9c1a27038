import assert from "node:assert/strict";
import {
  checkRange,
  checkRegionBytes,
  type Extent,
  extentOfRegions,
  formatBytes,
  isPowerOfTwo,
  mergeExtents,
  overlaps,
  parseSize,
  regionBytesDefault,
  regionBytesMax,
  regionBytesMin,
  regionCount,
  regionsOf,
} from "../src/extent.ts";

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const R = regionBytesDefault;

Deno.test("checkRange accepts unaligned ranges and ranges ending exactly at the volume size", async (t) => {
  const size = 8 * KiB;
  const cases: [string, number, number][] = [
    ["one byte at the start", 0, 1],
    ["unaligned offset and length", 4095, 2],
    ["odd offset inside a sector", 511, 1],
    ["the whole volume", 0, size],
    ["the last byte", size - 1, 1],
    ["ending exactly at the size", 4096, 4096],
  ];
  for (const [name, offset, length] of cases) {
    await t.step(name, () => checkRange(offset, length, size, "db0"));
  }
  await t.step("the last byte of a 2^53 - 1 byte volume", () => {
    checkRange(Number.MAX_SAFE_INTEGER - 1, 1, Number.MAX_SAFE_INTEGER, "huge");
  });
});

Deno.test("checkRange refuses bad lengths, bad offsets and ranges past the end, naming the values", async (t) => {
  const size = 8 * KiB;
  const cases: [string, number, number, number, RegExp][] = [
    ["zero length", 0, 0, size, /^Length 0 at offset 0 on "db0" must be a whole number > 0$/],
    ["negative length", 100, -1, size, /^Length -1 at offset 100 on "db0"/],
    ["fractional length", 0, 1.5, size, /^Length 1\.5 /],
    ["NaN length", 0, NaN, size, /^Length NaN /],
    ["negative offset", -1, 1, size, /^Offset -1 on "db0" must be a whole number of bytes >= 0$/],
    ["fractional offset", 0.5, 1, size, /^Offset 0\.5 /],
    ["offset 2^53", 2 ** 53, 1, Infinity, /^Offset 9007199254740992 on "db0"/],
    ["offset 2^60", 2 ** 60, 1, Infinity, new RegExp(`^Offset ${2 ** 60} on "db0"`)],
    ["length 2^53", 0, 2 ** 53, Infinity, /^Length 9007199254740992 /],
    ["one byte past the end", 4096, 4097, size, /^Range 4096\+4097 exceeds "db0" size 8192$/],
    ["starting at the size", size, 1, size, /^Range 8192\+1 exceeds "db0" size 8192$/],
    ["starting past the size", 3 * size, 1, size, /^Range 24576\+1 exceeds/],
    [
      "end beyond 2^53 on an unbounded size",
      Number.MAX_SAFE_INTEGER,
      1,
      Number.MAX_VALUE,
      /^Range 9007199254740991\+1 exceeds/,
    ],
  ];
  for (const [name, offset, length, sz, message] of cases) {
    await t.step(name, () => {
      assert.throws(() => checkRange(offset, length, sz, `"db0"`), (err: unknown) => {
        assert.ok(err instanceof RangeError, `expected a RangeError, got ${err}`);
        assert.match(err.message, message);
        return true;
      });
    });
  }
});

Deno.test("regionsOf covers every region a range touches and no other", async (t) => {
  const cases: [string, number, number, number, number][] = [
    // name, offset, length, first, count
    ["inside one region", 100, 200, 0, 1],
    ["exactly one aligned region", R, R, 1, 1],
    ["unaligned, spanning two regions", R - 1, 2, 0, 2],
    ["ending exactly on a region boundary", 0, 2 * R, 0, 2],
    ["ending one byte past a boundary", 0, 2 * R + 1, 0, 3],
    ["starting one byte before a boundary", 3 * R - 1, R, 2, 2],
    ["spanning many regions, unaligned at both ends", 1, 10 * R, 0, 11],
    ["a single byte deep in a large volume", 2 ** 50 + 5, 1, 2 ** 50 / R, 1],
    ["zero length touches nothing", 5 * R + 3, 0, 5, 0],
  ];
  for (const [name, offset, length, first, count] of cases) {
    await t.step(name, () => assert.deepEqual(regionsOf(offset, length, R), { first, count }));
  }
});

Deno.test("regionsOf agrees with a byte-by-byte count for every small range", () => {
  const regionBytes = 8;
  for (let offset = 0; offset < 4 * regionBytes; offset++) {
    for (let length = 1; length < 4 * regionBytes; length++) {
      const touched = new Set<number>();
      for (let b = offset; b < offset + length; b++) touched.add(Math.floor(b / regionBytes));
      const expected = { first: Math.min(...touched), count: touched.size };
      assert.deepEqual(regionsOf(offset, length, regionBytes), expected, `${offset}+${length}`);
    }
  }
});

Deno.test("regionCount counts a partial last region", async (t) => {
  const cases: [number, number][] = [[0, 0], [1, 1], [R, 1], [R + 1, 2], [10 * R - 1, 10]];
  for (const [size, count] of cases) {
    await t.step(`${size} bytes`, () => assert.equal(regionCount(size, R), count));
  }
});

Deno.test("extentOfRegions cuts the last partial region at the end of the volume", async (t) => {
  const size = 3 * R + 100;
  const cases: [string, number, number, Extent][] = [
    ["a whole region", 1, 1, { offset: R, length: R }],
    ["the partial last region alone", 3, 1, { offset: 3 * R, length: 100 }],
    ["a run ending in the partial region", 2, 2, { offset: 2 * R, length: R + 100 }],
    ["a run reaching past the end", 2, 5, { offset: 2 * R, length: R + 100 }],
    ["every region", 0, 4, { offset: 0, length: size }],
    ["a run wholly past the end", 7, 1, { offset: 7 * R, length: 0 }],
  ];
  for (const [name, first, count, extent] of cases) {
    await t.step(name, () => assert.deepEqual(extentOfRegions({ first, count }, R, size), extent));
  }
});

Deno.test("the regions of a range, turned back into bytes, contain the range", () => {
  const size = 100 * R + 12345;
  const ranges: [number, number][] = [
    [0, 1],
    [R - 1, 2],
    [77, 5 * R],
    [size - 1, 1],
    [99 * R + 1, R + 12344],
  ];
  for (const [offset, length] of ranges) {
    const e = extentOfRegions(regionsOf(offset, length, R), R, size);
    assert.ok(e.offset <= offset && offset + length <= e.offset + e.length, `${offset}+${length}`);
    assert.equal(e.offset % R, 0);
    assert.ok(e.offset + e.length <= size);
  }
});

Deno.test("mergeExtents sorts and merges overlapping and touching extents", async (t) => {
  const cases: [string, Extent[], Extent[]][] = [
    ["nothing", [], []],
    ["disjoint, out of order", [{ offset: 100, length: 10 }, { offset: 0, length: 10 }], [
      { offset: 0, length: 10 },
      { offset: 100, length: 10 },
    ]],
    ["touching extents join", [{ offset: 0, length: 10 }, { offset: 10, length: 5 }], [
      { offset: 0, length: 15 },
    ]],
    ["a one-byte gap stays", [{ offset: 0, length: 10 }, { offset: 11, length: 5 }], [
      { offset: 0, length: 10 },
      { offset: 11, length: 5 },
    ]],
    ["overlapping", [{ offset: 5, length: 10 }, { offset: 0, length: 8 }], [
      { offset: 0, length: 15 },
    ]],
    ["one inside another", [{ offset: 0, length: 100 }, { offset: 10, length: 5 }], [
      { offset: 0, length: 100 },
    ]],
    ["a chain that bridges earlier gaps", [
      { offset: 20, length: 5 },
      { offset: 0, length: 5 },
      { offset: 4, length: 17 },
    ], [{ offset: 0, length: 25 }]],
    ["empty extents are dropped", [{ offset: 3, length: 0 }, { offset: 50, length: 1 }], [
      { offset: 50, length: 1 },
    ]],
  ];
  for (const [name, input, expected] of cases) {
    await t.step(name, () => {
      const before = structuredClone(input);
      assert.deepEqual(mergeExtents(input), expected);
      assert.deepEqual(input, before, "the input must not be modified");
    });
  }
});

Deno.test("overlaps needs a shared byte, not just touching ends", async (t) => {
  const a = { offset: 100, length: 10 };
  const cases: [string, Extent, boolean][] = [
    ["touching before", { offset: 90, length: 10 }, false],
    ["touching after", { offset: 110, length: 5 }, false],
    ["sharing the first byte", { offset: 95, length: 6 }, true],
    ["sharing the last byte", { offset: 109, length: 1 }, true],
    ["containing it", { offset: 0, length: 1000 }, true],
    ["far away", { offset: 5000, length: 10 }, false],
  ];
  for (const [name, b, expected] of cases) {
    await t.step(name, () => {
      assert.equal(overlaps(a, b), expected);
      assert.equal(overlaps(b, a), expected);
    });
  }
});

Deno.test("parseSize reads byte counts and binary suffixes", async (t) => {
  const cases: [string, number][] = [
    ["4096", 4096],
    ["0", 0],
    ["512B", 512],
    ["64MiB", 64 * MiB],
    ["64mib", 64 * MiB],
    ["64M", 64 * MiB],
    ["1GiB", GiB],
    ["1g", GiB],
    ["4 KiB", 4 * KiB],
    [" 2T ", 2 * 1024 * GiB],
    ["8191TiB", 8191 * 1024 * GiB],
    ["9007199254740991", Number.MAX_SAFE_INTEGER],
  ];
  for (const [text, bytes] of cases) {
    await t.step(JSON.stringify(text), () => assert.equal(parseSize(text), bytes));
  }
});

Deno.test("parseSize rejects fractions, signs, unknown units and sizes past 2^53, naming the text", async (t) => {
  const cases: [string, RegExp][] = [
    ["1.5G", /^Size "1\.5G" is not a byte count/],
    ["-1", /^Size "-1" is not a byte count/],
    ["+1", /^Size "\+1" is not/],
    ["10XB", /^Size "10XB" is not/],
    ["", /^Size "" is not/],
    ["MiB", /^Size "MiB" is not/],
    ["1e9", /^Size "1e9" is not/],
    ["0x10", /^Size "0x10" is not/],
    ["1 2", /^Size "1 2" is not/],
    ["8192TiB", /^Size "8192TiB" is too large$/],
    ["9007199254740992", /^Size "9007199254740992" is too large$/],
    ["9".repeat(400), /is too large$/],
  ];
  for (const [text, message] of cases) {
    await t.step(JSON.stringify(text.slice(0, 20)), () => {
      assert.throws(() => parseSize(text), (err: unknown) => {
        assert.ok(err instanceof RangeError);
        assert.match(err.message, message);
        return true;
      });
    });
  }
});

Deno.test("isPowerOfTwo is exact even where Math.log2 rounds", async (t) => {
  const cases: [number, boolean][] = [
    [1, true],
    [2, true],
    [512, true],
    [2 ** 52, true],
    [0, false],
    [-2, false],
    [3, false],
    [0.5, false],
    [65536 + 512, false],
    [2 ** 50 + 1, false],
    [Number.MAX_SAFE_INTEGER, false],
    [2 ** 53, false],
    [NaN, false],
    [Infinity, false],
  ];
  for (const [n, expected] of cases) {
    await t.step(String(n), () => assert.equal(isPowerOfTwo(n), expected));
  }
});

Deno.test("checkRegionBytes accepts powers of two from one sector to 64 MiB only", async (t) => {
  for (const ok of [regionBytesMin, 4096, regionBytesDefault, regionBytesMax]) {
    await t.step(`${ok} accepted`, () => checkRegionBytes(ok));
  }
  for (const bad of [0, 256, 1000, 65537, 2 * regionBytesMax, regionBytesMax - 1]) {
    await t.step(`${bad} rejected`, () => {
      assert.throws(
        () => checkRegionBytes(bad),
        new RangeError(`Region size ${bad} must be a power of two from 512 to 67108864 bytes`),
      );
    });
  }
});

Deno.test("formatBytes picks the largest binary unit below the value", async (t) => {
  const cases: [number, string][] = [
    [0, "0 B"],
    [1023, "1023 B"],
    [1536, "1.50 KiB"],
    [64 * MiB, "64.0 MiB"],
    [300 * GiB, "300 GiB"],
  ];
  for (const [bytes, text] of cases) {
    await t.step(text, () => assert.equal(formatBytes(bytes), text));
  }
});
