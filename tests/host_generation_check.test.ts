/**
 * The decision at every connect (host/agent/generation_check.ts): one case per row of
 * ARCHITECTURE.md's decision table, and the trust each outcome leads to.
 */
import assert from "node:assert/strict";
import {
  checkGenerations,
  type GenerationOutcome,
  nextTrust,
  type RecordedGenerations,
  type SecondaryPeer,
  type TrackerPeer,
  type Trust,
} from "../host/agent/generation_check.ts";

const P = "00000000-0000-4000-8000-000000000001";
const P2 = "00000000-0000-4000-8000-000000000002";
const T = "10000000-0000-4000-8000-000000000001";
const T2 = "10000000-0000-4000-8000-000000000002";
const S = "20000000-0000-4000-8000-000000000001";
const S2 = "20000000-0000-4000-8000-000000000002";

const paired: RecordedGenerations = {
  primaryGeneration: P,
  trackerGeneration: T,
  markSeq: 10,
  secondaryGeneration: S,
};
const fresh: RecordedGenerations = {
  primaryGeneration: P,
  trackerGeneration: null,
  markSeq: 0,
  secondaryGeneration: null,
};

interface Row {
  name: string;
  recorded: RecordedGenerations;
  peer: TrackerPeer | SecondaryPeer;
  outcome: GenerationOutcome;
  /** What the primary records afterwards (only the fields that matter for the row). */
  after: Partial<RecordedGenerations>;
  /** Words the reason must carry (null: no reason). */
  reason: RegExp | null;
}

const rows: Row[] = [
  {
    name: "tracker, first connect: adopts its generation and sequence",
    recorded: fresh,
    peer: { kind: "tracker", generation: T, markSeq: 7 },
    outcome: "in-sync",
    after: { trackerGeneration: T, markSeq: 7 },
    reason: null,
  },
  {
    name: "tracker, same generation, sequence equal, nothing dirty: in sync",
    recorded: paired,
    peer: { kind: "tracker", generation: T, markSeq: 10, dirtyRegions: 0 },
    outcome: "in-sync",
    after: { trackerGeneration: T, markSeq: 10 },
    reason: null,
  },
  {
    name: "tracker, same generation, sequence ahead, regions dirty: bitmap resync is enough",
    recorded: paired,
    peer: { kind: "tracker", generation: T, markSeq: 12, dirtyRegions: 3 },
    outcome: "bitmap",
    after: { markSeq: 12 },
    reason: null,
  },
  {
    name: "tracker, another generation: the record was lost or is another tracker's",
    recorded: paired,
    peer: { kind: "tracker", generation: T2, markSeq: 0 },
    outcome: "record-lost",
    after: { trackerGeneration: T2, markSeq: 0 },
    reason: new RegExp(`${T2}.*${T}.*lost`),
  },
  {
    name: "tracker, same generation, sequence behind: an older copy of the KV",
    recorded: paired,
    peer: { kind: "tracker", generation: T, markSeq: 4, dirtyRegions: 2 },
    outcome: "record-lost",
    after: { trackerGeneration: T, markSeq: 4 },
    reason: /sequence 4, behind 10.*older copy/,
  },
  {
    name: "secondary, first connect, no writer yet: adopts its generation",
    recorded: fresh,
    peer: { kind: "secondary", generation: S, writerGeneration: null },
    outcome: "in-sync",
    after: { secondaryGeneration: S },
    reason: null,
  },
  {
    name: "secondary, first connect, this primary its writer: adopts",
    recorded: fresh,
    peer: { kind: "secondary", generation: S, writerGeneration: P },
    outcome: "in-sync",
    after: { secondaryGeneration: S },
    reason: null,
  },
  {
    name: "secondary, same generation, this primary its writer: in sync",
    recorded: paired,
    peer: { kind: "secondary", generation: S, writerGeneration: P },
    outcome: "in-sync",
    after: { secondaryGeneration: S },
    reason: null,
  },
  {
    name: "secondary, another generation (recreated or replaced): record lost",
    recorded: paired,
    peer: { kind: "secondary", generation: S2, writerGeneration: P },
    outcome: "record-lost",
    after: { secondaryGeneration: S2 },
    reason: new RegExp(`${S2}.*${S}.*recreated or replaced`),
  },
  {
    name: "secondary written by another primary after pairing with this one: split brain",
    recorded: paired,
    peer: { kind: "secondary", generation: S, writerGeneration: P2 },
    outcome: "split-brain",
    after: { secondaryGeneration: S },
    reason: new RegExp(`written by primary generation ${P2}, not by this primary \\(${P}`),
  },
  {
    name: "secondary written by another primary, this primary never paired: split brain",
    recorded: fresh,
    peer: { kind: "secondary", generation: S, writerGeneration: P2 },
    outcome: "split-brain",
    after: { secondaryGeneration: null },
    reason: /never paired/,
  },
  {
    name: "secondary recreated and written by another primary: split brain, not adopted",
    recorded: paired,
    peer: { kind: "secondary", generation: S2, writerGeneration: P2 },
    outcome: "split-brain",
    after: { secondaryGeneration: S },
    reason: new RegExp(P2),
  },
];

Deno.test("every row of the generation decision table", async (t) => {
  for (const row of rows) {
    await t.step(row.name, () => {
      const d = checkGenerations("db0", row.recorded, row.peer);
      assert.equal(d.outcome, row.outcome);
      for (const [key, value] of Object.entries(row.after)) {
        assert.equal(d.recorded[key as keyof RecordedGenerations], value, key);
      }
      assert.equal(d.recorded.primaryGeneration, P, "the primary's own generation never changes");
      if (row.reason === null) assert.equal(d.reason, null);
      else {
        assert.match(d.reason ?? "", row.reason);
        assert.match(d.reason ?? "", /volume "db0"/);
      }
    });
  }
});

Deno.test("trust after each outcome: losses and split brains are never forgotten by a later agreement", () => {
  const cases: [Trust, GenerationOutcome, Trust][] = [
    ["trusted", "in-sync", "trusted"],
    ["trusted", "bitmap", "trusted"],
    ["trusted", "record-lost", "checksum-resync-needed"],
    ["trusted", "split-brain", "split-brain"],
    ["checksum-resync-needed", "in-sync", "checksum-resync-needed"],
    ["checksum-resync-needed", "bitmap", "checksum-resync-needed"],
    ["checksum-resync-needed", "record-lost", "checksum-resync-needed"],
    ["checksum-resync-needed", "split-brain", "split-brain"],
    ["split-brain", "in-sync", "split-brain"],
    ["split-brain", "record-lost", "split-brain"],
  ];
  for (const [from, outcome, to] of cases) {
    assert.equal(nextTrust(from, outcome), to, `${from} + ${outcome}`);
  }
});
