/**
 * Metadata contexts and NBD_CMD_BLOCK_STATUS, in-process with the raw client: negotiation
 * (LIST / SET_META_CONTEXT, structured replies first, tokens), the reply chunks of both contexts,
 * their bounds, and the requests the server must refuse. Wire values are spelled out from
 * proto.md, not imported from the code under test.
 */
import assert from "node:assert/strict";
import {
  allocationScanBytesMax,
  dirtyDescriptors,
  type DirtyExtentSource,
  isZero,
} from "../host/nbd/block_status.ts";
import { listContexts, selectContexts } from "../host/nbd/meta_context.ts";
import { parseMetaContextRequest } from "../host/nbd/protocol.ts";
import type { Extent } from "../src/extent.ts";
import { MemoryDevice, RecordingDevice } from "./support/memory_device.ts";
import { NbdFixture } from "./support/nbd_fixture.ts";
import { dv, infoRequest, type RawNbdClient, text } from "./support/nbd_raw_client.ts";

const OPT = { GO: 7, STRUCTURED: 8, LIST_META: 9, SET_META: 10 };
const REP = { ACK: 1, META_CONTEXT: 4, ERR_POLICY: 0x80000002, ERR_INVALID: 0x80000003 };
const REP_ERR_UNKNOWN = 0x80000006;
const CMD_BLOCK_STATUS = 7;
const REQ_ONE = 1 << 3;
const REPLY_TYPE_BLOCK_STATUS = 5;
const EIO = 5, EINVAL = 22;
const STATE_ZERO = 2;
const DIRTY = 1;

const KiB = 1024;
const MiB = 1024 * KiB;
const token = "tok-3n";

/** LIST / SET_META_CONTEXT data: export name, then the queries. */
function metaRequest(name: string, queries: string[]): Uint8Array {
  const enc = new TextEncoder();
  const parts = [enc.encode(name), ...queries.map((q) => enc.encode(q))];
  const out = new Uint8Array(8 + parts.reduce((n, p) => n + 4 + p.length, 0) - 4);
  const v = dv(out);
  let at = 0;
  v.setUint32(at, parts[0].length);
  out.set(parts[0], at + 4);
  at += 4 + parts[0].length;
  v.setUint32(at, queries.length);
  at += 4;
  for (const p of parts.slice(1)) {
    v.setUint32(at, p.length);
    out.set(p, at + 4);
    at += 4 + p.length;
  }
  return out;
}

/** Sends a meta context option; returns the contexts (id, name) and the final reply type. */
async function metaOption(c: RawNbdClient, option: number, name: string, queries: string[]) {
  await c.sendOption(option, metaRequest(name, queries));
  const contexts: { id: number; name: string }[] = [];
  for (;;) {
    const r = await c.readOptionReply();
    assert.equal(r.option, option);
    if (r.type !== REP.META_CONTEXT) return { contexts, final: r.type, message: text(r.data) };
    contexts.push({ id: dv(r.data).getUint32(0), name: text(r.data.subarray(4)) });
  }
}

async function structured(c: RawNbdClient): Promise<void> {
  await c.sendOption(OPT.STRUCTURED);
  assert.equal((await c.readOptionReply()).type, REP.ACK);
}

/** The block status chunks of a reply: context id → descriptors. */
function statusChunks(chunks: { type: number; payload: Uint8Array }[]) {
  const out = new Map<number, { length: number; flags: number }[]>();
  for (const c of chunks) {
    assert.equal(c.type, REPLY_TYPE_BLOCK_STATUS);
    assert.equal((c.payload.length - 4) % 8, 0, "4 + 8n bytes");
    const v = dv(c.payload);
    const ds = [];
    for (let at = 4; at < c.payload.length; at += 8) {
      ds.push({ length: v.getUint32(at), flags: v.getUint32(at + 4) });
    }
    assert.ok(ds.length > 0, "at least one descriptor");
    assert.ok(!out.has(v.getUint32(0)), "one chunk per context");
    out.set(v.getUint32(0), ds);
  }
  return out;
}

/** A dirty record that answers fixed extents, or fails while `failing` is set. */
class FakeDirty implements DirtyExtentSource {
  failing = false;
  calls = 0;
  constructor(public extents: Extent[]) {}
  dirtyExtents(): Promise<Extent[]> {
    this.calls++;
    if (this.failing) return Promise.reject(new Error("Tracker at http://x answered 503"));
    return Promise.resolve(this.extents);
  }
}

/** A 1 MiB device with data at 64 KiB..68 KiB and 512 KiB+100..+200, zero elsewhere. */
function device(): MemoryDevice {
  return new MemoryDevice(MiB, (b) => {
    b.fill(7, 64 * KiB, 68 * KiB);
    b.fill(9, 512 * KiB + 100, 512 * KiB + 200);
  });
}

function serve(opts: { token?: string; dirty?: FakeDirty } = {}) {
  const mem = device();
  const rec = new RecordingDevice(mem);
  const dirty = opts.dirty ?? new FakeDirty([{ offset: 128 * KiB, length: 64 * KiB }]);
  const fx = NbdFixture.start({ db0: rec, plain: new MemoryDevice(MiB) }, {
    token: opts.token,
    dirtySource: (name) => name === "db0" ? dirty : undefined,
  });
  return { fx, rec, dirty };
}

/** A client in transmission on db0 with `queries` selected. */
async function openWith(fx: NbdFixture, queries: string[], name = "db0") {
  const c = await fx.connect();
  await c.start();
  await structured(c);
  const set = await metaOption(c, OPT.SET_META, name, queries);
  assert.equal(set.final, REP.ACK, set.message);
  await c.go(name);
  c.structured = true;
  return { c, contexts: set.contexts };
}

Deno.test("LIST_META_CONTEXT: no query lists both contexts, a namespace lists its own", async (t) => {
  const { fx } = serve();
  await using _ = fx;
  const c = await fx.connect();
  await c.start();
  const cases: [string[], string[]][] = [
    [[], ["base:allocation", "trackmirror:dirty"]],
    [["base:"], ["base:allocation"]],
    [["trackmirror:"], ["trackmirror:dirty"]],
    [["trackmirror:dirty"], ["trackmirror:dirty"]],
    [["qemu:dirty-bitmap:x", "nocolon", "base:nothing"], []],
  ];
  for (const [queries, names] of cases) {
    await t.step(`queries ${JSON.stringify(queries)}`, async () => {
      const r = await metaOption(c, OPT.LIST_META, "db0", queries);
      assert.equal(r.final, REP.ACK);
      assert.deepEqual(r.contexts.map((x) => x.name).sort(), names);
      assert.ok(r.contexts.every((x) => x.id === 0), "list ids are reserved zeroes");
    });
  }
  await t.step("an export without a dirty record offers base:allocation only", async () => {
    const r = await metaOption(c, OPT.LIST_META, "plain", []);
    assert.deepEqual(r.contexts.map((x) => x.name), ["base:allocation"]);
  });
  await t.step("an unknown export is ERR_UNKNOWN", async () => {
    const r = await metaOption(c, OPT.LIST_META, "nope", []);
    assert.equal(r.final, REP_ERR_UNKNOWN);
    assert.match(r.message, /"nope"/);
  });
});

Deno.test("SET_META_CONTEXT needs structured replies, selects exact names, ignores the rest", async () => {
  const { fx } = serve();
  await using _ = fx;
  const c = await fx.connect();
  await c.start();
  const early = await metaOption(c, OPT.SET_META, "db0", ["base:allocation"]);
  assert.equal(early.final, REP.ERR_INVALID);
  assert.match(early.message, /NBD_OPT_STRUCTURED_REPLY/);
  await structured(c);
  const set = await metaOption(c, OPT.SET_META, "db0", [
    "base:",
    "x-other:thing",
    "trackmirror:dirty",
    "base:allocation",
    "base:allocation",
  ]);
  assert.equal(set.final, REP.ACK);
  assert.deepEqual(set.contexts.map((x) => x.name).sort(), [
    "base:allocation",
    "trackmirror:dirty",
  ]);
  assert.equal(new Set(set.contexts.map((x) => x.id)).size, 2, "ids are unique");
  const none = await metaOption(c, OPT.SET_META, "db0", ["base:"]);
  assert.deepEqual(none, { contexts: [], final: REP.ACK, message: "" });
});

Deno.test("BLOCK_STATUS: base:allocation reports the zero runs, never a hole", async () => {
  const { fx } = serve();
  await using _ = fx;
  const { c, contexts } = await openWith(fx, ["base:allocation"]);
  const r = await c.request({ type: CMD_BLOCK_STATUS, offset: 0, length: MiB }).reply;
  assert.equal(r.error, 0, r.message);
  const ds = statusChunks(r.chunks!).get(contexts[0].id)!;
  assert.deepEqual(ds, [
    { length: 64 * KiB, flags: STATE_ZERO },
    { length: 4 * KiB, flags: 0 },
    { length: 512 * KiB - 68 * KiB, flags: STATE_ZERO },
    { length: 4 * KiB, flags: 0 }, // the 4 KiB block holding 512 KiB+100..+200
    { length: MiB - 516 * KiB, flags: STATE_ZERO },
  ]);
  // An unaligned range: the first block is cut at the next 4 KiB boundary.
  const u = await c.request({ type: CMD_BLOCK_STATUS, offset: 66 * KiB, length: 4 * KiB }).reply;
  assert.deepEqual(statusChunks(u.chunks!).get(contexts[0].id), [
    { length: 2 * KiB, flags: 0 },
    { length: 2 * KiB, flags: STATE_ZERO },
  ]);
});

Deno.test("BLOCK_STATUS: trackmirror:dirty reports the source's extents within the range", async () => {
  const dirty = new FakeDirty([
    { offset: 128 * KiB, length: 64 * KiB },
    { offset: 100 * KiB, length: 40 * KiB }, // overlaps the first
    { offset: 900 * KiB, length: 400 * KiB }, // runs past the export's end
  ]);
  const { fx } = serve({ dirty });
  await using _ = fx;
  const { c, contexts } = await openWith(fx, ["trackmirror:dirty", "base:allocation"]);
  const id = contexts.find((x) => x.name === "trackmirror:dirty")!.id;
  const r = await c.request({ type: CMD_BLOCK_STATUS, offset: 64 * KiB, length: MiB - 64 * KiB })
    .reply;
  assert.equal(r.error, 0, r.message);
  const chunks = statusChunks(r.chunks!);
  assert.equal(chunks.size, 2, "one chunk per selected context");
  assert.deepEqual(chunks.get(id), [
    { length: 36 * KiB, flags: 0 },
    { length: 92 * KiB, flags: DIRTY },
    { length: 708 * KiB, flags: 0 },
    { length: 124 * KiB, flags: DIRTY },
  ]);
  const one = await c.request({
    type: CMD_BLOCK_STATUS,
    flags: REQ_ONE,
    offset: 130 * KiB,
    length: 8 * KiB,
  }).reply;
  for (const ds of statusChunks(one.chunks!).values()) {
    assert.equal(ds.length, 1, "REQ_ONE: one descriptor per context");
    assert.ok(ds[0].length <= 8 * KiB);
  }
  assert.deepEqual(statusChunks(one.chunks!).get(id), [{ length: 8 * KiB, flags: DIRTY }]);
});

Deno.test("BLOCK_STATUS: a dirty record that cannot be read fails the request, the connection stays", async () => {
  const { fx, dirty } = serve();
  await using _ = fx;
  const { c } = await openWith(fx, ["trackmirror:dirty"]);
  dirty.failing = true;
  const r = await c.request({ type: CMD_BLOCK_STATUS, offset: 0, length: MiB }).reply;
  assert.equal(r.error, EIO);
  assert.match(r.message!, /NBD_CMD_BLOCK_STATUS at 0\+1048576 failed: Tracker at http:\/\/x/);
  dirty.failing = false;
  assert.equal(
    (await c.request({ type: CMD_BLOCK_STATUS, offset: 0, length: MiB }).reply).error,
    0,
  );
});

Deno.test("BLOCK_STATUS: a long range gets a prefix of at most allocationScanBytesMax read", async () => {
  const size = allocationScanBytesMax * 2 + 4096;
  const mem = new MemoryDevice(size);
  const rec = new RecordingDevice(mem);
  await using fx = NbdFixture.start({ big: rec });
  const { c, contexts } = await openWith(fx, ["base:allocation"], "big");
  const r = await c.request({ type: CMD_BLOCK_STATUS, offset: 4096, length: size - 4096 }).reply;
  assert.equal(r.error, 0, r.message);
  const ds = statusChunks(r.chunks!).get(contexts[0].id)!;
  assert.equal(ds.reduce((n, d) => n + d.length, 0), allocationScanBytesMax);
  assert.deepEqual(
    rec.calls.map((x) => [x.op, x.length]),
    [["read", allocationScanBytesMax]],
    "one bounded read",
  );
});

Deno.test("BLOCK_STATUS is refused with EINVAL when it cannot be served", async (t) => {
  const { fx, rec } = serve();
  await using _ = fx;
  await t.step("no context selected", async () => {
    const c = await fx.open("db0", { structured: true });
    const r = await c.request({ type: CMD_BLOCK_STATUS, offset: 0, length: 4096 }).reply;
    assert.equal(r.error, EINVAL);
    assert.match(r.message!, /no metadata context was selected/);
  });
  await t.step("contexts selected for another export than NBD_OPT_GO's", async () => {
    const c = await fx.connect();
    await c.start();
    await structured(c);
    assert.equal((await metaOption(c, OPT.SET_META, "plain", ["base:allocation"])).final, REP.ACK);
    await c.go("db0");
    const r = await c.request({ type: CMD_BLOCK_STATUS, offset: 0, length: 4096 }).reply;
    assert.equal(r.error, EINVAL);
  });
  const { c } = await openWith(fx, ["base:allocation", "trackmirror:dirty"]);
  const cases: [string, number, number, number][] = [
    ["a range past the end", MiB - 4096, 8192, 0],
    ["a range larger than the export", 0, MiB + 1, 0],
    ["an offset of 2^60", 2 ** 60, 4096, 0],
    ["length 0", 0, 0, 0],
    ["an unknown flag (DF)", 0, 4096, 1 << 2],
  ];
  for (const [what, offset, length, flags] of cases) {
    await t.step(what, async () => {
      const r = await c.request({ type: CMD_BLOCK_STATUS, offset, length, flags }).reply;
      assert.equal(r.error, EINVAL);
      assert.equal(r.chunks!.length, 1, "one error chunk");
    });
  }
  assert.deepEqual(rec.calls, [], "no refused request read the device");
  assert.equal(
    (await c.request({ type: CMD_BLOCK_STATUS, offset: 0, length: 4096 }).reply).error,
    0,
  );
});

Deno.test("with a token, meta context options need VOLUME/TOKEN like NBD_OPT_GO", async (t) => {
  const { fx, dirty } = serve({ token });
  await using _ = fx;
  await t.step("the right token lists and selects", async () => {
    const { c, contexts } = await openWith(fx, ["trackmirror:dirty"], `db0/${token}`);
    assert.deepEqual(contexts.map((x) => x.name), ["trackmirror:dirty"]);
    const r = await c.request({ type: CMD_BLOCK_STATUS, offset: 0, length: 4096 }).reply;
    assert.equal(r.error, 0, r.message);
  });
  await t.step("a missing or wrong token is ERR_POLICY and names no volume", async () => {
    const c = await fx.connect();
    await c.start();
    await structured(c);
    for (const [option, name] of [[OPT.LIST_META, "db0"], [OPT.SET_META, "db0/wrong"]] as const) {
      const r = await metaOption(c, option, name, ["trackmirror:dirty"]);
      assert.equal(r.final, REP.ERR_POLICY);
      assert.deepEqual(r.contexts, []);
      assert.doesNotMatch(r.message, /db0/);
    }
    // The third refusal, here on NBD_OPT_GO, closes the connection: the bound is shared.
    await c.sendOption(OPT.GO, infoRequest("db0/guess"));
    assert.equal((await c.readOptionReply()).type, REP.ERR_POLICY);
    assert.ok(await c.closedWithin(5_000));
  });
  assert.equal(dirty.calls, 1, "only the authenticated request read the dirty record");
});

Deno.test("meta context queries: parsing, listing and selecting", async (t) => {
  await t.step("well formed data parses; short, long or lying data does not", () => {
    assert.deepEqual(parseMetaContextRequest(metaRequest("v", ["base:allocation", ""])), {
      ok: true,
      value: { name: "v", queries: ["base:allocation", ""] },
    });
    const good = metaRequest("v", ["base:"]);
    for (const bad of [good.subarray(0, 7), new Uint8Array([...good, 0]), good.subarray(0, 12)]) {
      assert.equal(parseMetaContextRequest(bad).ok, false);
    }
    const lying = good.slice();
    dv(lying).setUint32(5, 2); // two queries, one present
    const r = parseMetaContextRequest(lying);
    assert.ok(!r.ok && r.error.kind === "invalid" && /query 2 of 2/.test(r.error.message));
  });
  await t.step("wildcards list but never select", () => {
    const offered = [{ id: 1, name: "base:allocation" }, { id: 2, name: "trackmirror:dirty" }];
    assert.deepEqual(listContexts(offered, ["trackmirror:"]), [offered[1]]);
    assert.deepEqual(selectContexts(offered, ["trackmirror:"]), []);
    assert.deepEqual(selectContexts(offered, []), []);
    assert.deepEqual(listContexts(offered, []), offered);
  });
});

Deno.test("dirty descriptors: alternate, merge overlaps, and stop at the descriptor bound", () => {
  const q = { offset: 0, length: 100, one: false };
  assert.deepEqual(dirtyDescriptors([], q), [{ length: 100, flags: 0 }]);
  assert.deepEqual(
    dirtyDescriptors([{ offset: 10, length: 10 }, { offset: 15, length: 10 }, {
      offset: 90,
      length: 50,
    }], q),
    [{ length: 10, flags: 0 }, { length: 15, flags: DIRTY }, { length: 65, flags: 0 }, {
      length: 10,
      flags: DIRTY,
    }],
  );
  const many = Array.from({ length: 20 }, (_, i) => ({ offset: i * 4 + 1, length: 2 }));
  const capped = dirtyDescriptors(many, q, 5);
  assert.equal(capped.length, 5);
  assert.deepEqual(capped.map((d) => d.flags), [0, DIRTY, 0, DIRTY, 0]);
  assert.ok(capped.reduce((n, d) => n + d.length, 0) < 100, "a prefix of the range");
});

Deno.test("isZero checks every byte at any alignment", () => {
  const b = new Uint8Array(64);
  for (let start = 0; start < 5; start++) {
    for (let end = start; end < 64; end += 7) assert.ok(isZero(b.subarray(start, end)));
  }
  for (let i = 0; i < 64; i++) {
    b[i] = 1;
    assert.equal(isZero(b.subarray(i % 3)), false, `byte ${i}`);
    assert.ok(isZero(b.subarray(i + 1)));
    b[i] = 0;
  }
});
