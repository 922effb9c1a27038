/**
 * Fuzzing journal replay (backup/journal_replay.ts) with fast-check: journals of one to three
 * segments, then one piece of damage anywhere — a flipped bit, a zeroed range, a cut file, garbage
 * written over or inserted, a wrong checksum, a duplicated record. Replay must never throw anything
 * but its documented corruption error, never apply a record that was damaged, apply every record
 * before the damage, and follow its documented rule: damage in a closed segment or corruption a
 * tear cannot explain refuses to start (leaving the file as it was); a torn tail of the last
 * segment is cut off.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { replayJournal } from "../backup/journal_replay.ts";
import { segmentPath } from "../backup/segment_files.ts";
import { encodeRecord, type JournalRecord } from "../src/journal_record.ts";
import { fuzz } from "./support/fuzz.ts";

interface Rec {
  kind: "write" | "zero";
  volume: string;
  offset: number;
  length: number;
  data: Uint8Array;
}

/** Payload bytes are never zero: only damage makes zero sectors (see hasUnwrittenSector). */
const recordArb: fc.Arbitrary<Rec> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      volume: fc.constantFrom("db0", "v1"),
      offset: fc.nat(1 << 30),
      data: fc.uint8Array({ minLength: 1, maxLength: 1500, min: 1, max: 255 }),
    }).map((r) => ({ kind: "write" as const, ...r, length: r.data.length })),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      volume: fc.constantFrom("db0", "v1"),
      offset: fc.nat(1 << 30),
      length: fc.integer({ min: 1, max: 1 << 20 }),
    }).map((r) => ({ kind: "zero" as const, ...r, data: new Uint8Array(0) })),
  },
);

const segmentArb = fc.record({
  records: fc.array(recordArb, { minLength: 1, maxLength: 6 }),
  /** The preallocated zeros after the last record (0: a cleanly closed, trimmed segment). */
  zeroTail: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 3000 })),
});

type Damage =
  | { kind: "flip"; at: number; bit: number }
  | { kind: "zero"; at: number; length: number }
  | { kind: "cut"; at: number }
  | { kind: "overwrite"; at: number; garbage: Uint8Array }
  | { kind: "insert"; at: number; garbage: Uint8Array }
  | { kind: "checksum"; record: number }
  | { kind: "duplicate"; record: number; after: number };

const frac = fc.noBias(fc.integer({ min: 0, max: 999_999 })).map((n) => n / 1e6);
const damageArb: fc.Arbitrary<Damage> = fc.oneof(
  fc.record({ kind: fc.constant("flip" as const), at: frac, bit: fc.nat(7) }),
  fc.record({
    kind: fc.constant("zero" as const),
    at: frac,
    length: fc.integer({ min: 1, max: 2000 }),
  }),
  fc.record({ kind: fc.constant("cut" as const), at: frac }),
  fc.record({
    kind: fc.constant("overwrite" as const),
    at: frac,
    garbage: fc.uint8Array({ minLength: 1, maxLength: 64, min: 1 }),
  }),
  fc.record({
    kind: fc.constant("insert" as const),
    at: frac,
    garbage: fc.uint8Array({ minLength: 1, maxLength: 64, min: 1 }),
  }),
  fc.record({ kind: fc.constant("checksum" as const), record: fc.nat() }),
  fc.record({ kind: fc.constant("duplicate" as const), record: fc.nat(), after: fc.nat() }),
).map((d) => d as Damage);

const scenarioArb = fc.record({
  segments: fc.array(segmentArb, { minLength: 1, maxLength: 3 }),
  damaged: fc.nat(),
  damage: damageArb,
});

/** One encoded segment and where each record lies in it. */
function layout(seg: { records: Rec[]; zeroTail: number }) {
  const encoded = seg.records.map((r) => encodeRecord(r));
  const starts: number[] = [];
  let at = 0;
  for (const e of encoded) {
    starts.push(at);
    at += e.length;
  }
  const bytes = new Uint8Array(at + seg.zeroTail);
  encoded.forEach((e, i) => bytes.set(e, starts[i]));
  return { bytes, starts, ends: encoded.map((e, i) => starts[i] + e.length), dataEnd: at };
}

/** Applies `d` to `bytes`; returns the damaged file and the first damaged byte (or undefined). */
function damage(
  bytes: Uint8Array,
  l: ReturnType<typeof layout>,
  d: Damage,
): { file: Uint8Array; from?: number; to?: number; duplicateAt?: number } {
  const file = bytes.slice();
  const pos = (f: number) => Math.min(bytes.length - 1, Math.floor(f * bytes.length));
  const n = l.starts.length;
  switch (d.kind) {
    case "flip": {
      const at = pos(d.at);
      file[at] ^= 1 << d.bit;
      return { file, from: at, to: at + 1 };
    }
    case "zero": {
      const at = pos(d.at);
      const end = Math.min(file.length, at + d.length);
      const changed = file.subarray(at, end).some((b) => b !== 0);
      file.fill(0, at, end);
      return { file, from: changed ? at : undefined };
    }
    case "cut": {
      const at = pos(d.at);
      return { file: file.slice(0, at), from: at < l.dataEnd ? at : undefined };
    }
    case "overwrite": {
      const at = pos(d.at);
      const g = d.garbage.subarray(0, file.length - at);
      file.set(g, at);
      return { file, from: at, to: at + g.length };
    }
    case "insert": {
      const at = pos(d.at);
      const out = new Uint8Array(file.length + d.garbage.length);
      out.set(file.subarray(0, at));
      out.set(d.garbage, at);
      out.set(file.subarray(at), at + d.garbage.length);
      return { file: out, from: at };
    }
    case "checksum": {
      const r = d.record % n;
      file[l.starts[r] + 20] ^= 0xff;
      return { file, from: l.starts[r] + 20, to: l.starts[r] + 21 };
    }
    case "duplicate": {
      const r = d.record % n;
      const after = d.after % n;
      const copy = bytes.subarray(l.starts[r], l.ends[r]);
      const at = l.ends[after];
      const out = new Uint8Array(file.length + copy.length);
      out.set(file.subarray(0, at));
      out.set(copy, at);
      out.set(file.subarray(at), at + copy.length);
      return { file: out, duplicateAt: after + 1 };
    }
  }
}

const same = (a: JournalRecord, b: Rec) =>
  a.kind === b.kind && a.volume === b.volume && a.offset === b.offset &&
  a.length === b.length && a.data.length === b.data.length &&
  a.data.every((x, i) => x === b.data[i]);

Deno.test("fuzz: journal replay applies only intact records and refuses or cuts as documented", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fuzz_journal_" });
  try {
    await fuzz(
      "journal replay",
      fc.asyncProperty(scenarioArb, async ({ segments, damaged, damage: d }) => {
        for await (const e of Deno.readDir(dir)) await Deno.remove(`${dir}/${e.name}`);
        const k = damaged % segments.length;
        const isLast = k === segments.length - 1;
        const layouts = segments.map(layout);
        const hit = damage(layouts[k].bytes, layouts[k], d);
        for (const [i, l] of layouts.entries()) {
          await Deno.writeFile(segmentPath(dir, i + 1), i === k ? hit.file : l.bytes);
        }
        // What replay may apply, in order: every record, with the duplicate where it was put.
        const expected: Rec[][] = segments.map((s) => [...s.records]);
        if (hit.duplicateAt !== undefined) {
          const records = segments[k].records;
          expected[k].splice(
            hit.duplicateAt,
            0,
            records[(d as { record: number }).record % records.length],
          );
        }
        // Records of segment k lying wholly before the first damaged byte are intact.
        const intact = hit.from === undefined
          ? expected[k].length
          : layouts[k].ends.filter((e) => e <= hit.from!).length;

        const applied: JournalRecord[] = [];
        const logs: string[] = [];
        let error: Error | undefined;
        try {
          await replayJournal(
            dir,
            (r) => applied.push({ ...r, data: r.data.slice() }),
            (m) => logs.push(m),
          );
        } catch (err) {
          error = err as Error;
        }
        const flat = expected.flat();
        const before = expected.slice(0, k).flat();
        const later = isLast ? [] : expected.slice(k + 1).flat();
        const sameRun = (got: JournalRecord[], want: Rec[], what: string) => {
          assert.equal(got.length, want.length, `${what}: records applied`);
          got.forEach((g, i) => assert.ok(same(g, want[i]), `${what}: record ${i} differs`));
        };
        if (error) {
          assert.match(
            error.message,
            /^Journal segment ".*" is corrupt at byte \d+ of \d+: /,
            `unexpected error: ${error.stack}`,
          );
          assert.ok(error.message.includes(segmentPath(dir, k + 1)), "names the damaged segment");
          assert.ok(hit.from !== undefined, "refused an undamaged journal");
          // Nothing is cut when replay refuses: the evidence stays.
          assert.deepEqual(await Deno.readFile(segmentPath(dir, k + 1)), hit.file);
          // Replay stopped inside segment k, after its intact records, never applying a bad one.
          const inK = applied.length - before.length;
          assert.ok(inK >= intact && inK <= expected[k].length, `${inK} records of segment ${k}`);
          sameRun(applied, flat.slice(0, applied.length), "before the refusal");
          return;
        }
        // It started: all of the segments before, a prefix of segment k at least as long as its
        // intact records, and all of the segments after.
        const inK = applied.length - before.length - later.length;
        assert.ok(inK >= intact && inK <= expected[k].length, `${inK} records of segment ${k}`);
        sameRun(applied, [...before, ...expected[k].slice(0, inK), ...later], "replayed");
        if (!isLast && hit.from !== undefined) {
          // A closed segment only opens when its damage reads as its end: zeros or a cut.
          assert.ok(d.kind === "zero" || d.kind === "cut", `closed segment with ${d.kind} opened`);
          assert.equal(inK, intact, "a closed segment's records after the damage");
        }
        if (isLast && hit.from !== undefined && hit.to !== undefined) {
          // Non-zero damage followed by intact records is no tear: replay must have refused.
          const intactAfter = layouts[k].starts.some((s) => s >= hit.to!);
          assert.ok(
            !intactAfter,
            `${d.kind} at byte ${hit.from} of the last segment cut as a tear`,
          );
        }
      }),
      1000,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
