/**
 * The NBD server in-process, driven by a raw client written from the spec: every option, out of
 * order replies, backpressure, and bad input — which must never reach the device nor take the
 * server down.
 */
import assert from "node:assert/strict";
import { PassThroughDevice } from "../src/block_device.ts";
import { FaultDevice, GateDevice, MemoryDevice, RecordingDevice } from "./support/memory_device.ts";
import { eventually, NbdFixture, pattern, sleep } from "./support/nbd_fixture.ts";
import { dv, infoRequest, RawNbdClient, text } from "./support/nbd_raw_client.ts";

// Values from the spec, spelled out here rather than imported from the code under test.
const OPT = { EXPORT_NAME: 1, ABORT: 2, LIST: 3, STARTTLS: 5, INFO: 6, GO: 7, STRUCTURED: 8 };
const LIST_META_CONTEXT = 9;
const SET_META_CONTEXT = 10;
const REP = {
  ACK: 1,
  SERVER: 2,
  INFO: 3,
  ERR_UNSUP: 0x80000001,
  ERR_INVALID: 0x80000003,
  ERR_UNKNOWN: 0x80000006,
  ERR_TOO_BIG: 0x80000009,
};
const CMD = { READ: 0, WRITE: 1, DISC: 2, FLUSH: 3, TRIM: 4, CACHE: 5, ZEROES: 6, STATUS: 7 };
const FUA = 1, NO_HOLE = 2, DF = 4;
const EIO = 5, EINVAL = 22, ENOSPC = 28, ESHUTDOWN = 108;
/** HAS_FLAGS | SEND_FLUSH | SEND_FUA | SEND_TRIM | SEND_WRITE_ZEROES | CAN_MULTI_CONN */
const FLAGS = 0x0001 | 0x0004 | 0x0008 | 0x0020 | 0x0040 | 0x0100;
const SEND_DF = 0x0080;

const KiB = 1024;
const MiB = 1024 * KiB;

function recorded(sizeBytes = MiB) {
  const mem = new MemoryDevice(sizeBytes);
  const rec = new RecordingDevice(mem);
  return { mem, rec };
}

Deno.test("handshake: the greeting offers FIXED_NEWSTYLE and NO_ZEROES", async () => {
  await using fx = NbdFixture.start({ db0: new MemoryDevice(MiB) });
  const c = await fx.connect();
  assert.equal(await c.readGreeting(), 0b11);
});

Deno.test("handshake: client flags with an unknown bit end the connection", async () => {
  await using fx = NbdFixture.start({ db0: new MemoryDevice(MiB) });
  const c = await fx.connect();
  await c.readGreeting();
  await c.sendClientFlags(0b100);
  assert.ok(await c.closedWithin(2000));
  assert.match(fx.logs.join("\n"), /Unknown client flags 0x4/);
});

Deno.test("NBD_OPT_LIST answers one NBD_REP_SERVER per export, then ACK", async () => {
  await using fx = NbdFixture.start({
    db0: new MemoryDevice(MiB),
    "vm.disk-1": new MemoryDevice(MiB),
  });
  const c = await fx.connect();
  await c.start();
  await c.sendOption(OPT.LIST);
  const replies = await c.readOptionReplies();
  assert.deepEqual(replies.map((r) => [r.option, r.type]), [[3, 2], [3, 2], [3, 1]]);
  const names = replies.slice(0, 2).map((r) =>
    text(r.data.subarray(4, 4 + dv(r.data).getUint32(0)))
  );
  assert.deepEqual(names, ["db0", "vm.disk-1"]);

  await c.sendOption(OPT.LIST, new Uint8Array([1]));
  assert.equal((await c.readOptionReply()).type, REP.ERR_INVALID);
  await c.go("db0"); // haggling went on
});

Deno.test("NBD_OPT_INFO describes an export without leaving the handshake", async () => {
  await using fx = NbdFixture.start({ db0: new MemoryDevice(3 * MiB) }, { requestBytesMax: MiB });
  const c = await fx.connect();
  await c.start();
  await c.sendOption(OPT.INFO, infoRequest("db0", [3]));
  const replies = await c.readOptionReplies();
  assert.deepEqual(replies.map((r) => r.type), [REP.INFO, REP.INFO, REP.ACK]);
  const byType = new Map(replies.slice(0, 2).map((r) => [dv(r.data).getUint16(0), dv(r.data)]));
  const exp = byType.get(0)!;
  assert.equal(exp.byteLength, 12);
  assert.equal(exp.getBigUint64(2), BigInt(3 * MiB));
  assert.equal(exp.getUint16(10), FLAGS);
  const bs = byType.get(3)!;
  assert.deepEqual([bs.getUint32(2), bs.getUint32(6), bs.getUint32(10)], [1, 4096, MiB]);

  const go = await c.go("db0"); // INFO did not enter transmission
  assert.equal(go.size, 3 * MiB);
  assert.equal((await c.read(0, 16)).error, 0);
});

Deno.test("NBD_OPT_INFO and NBD_OPT_GO of an unknown export: ERR_UNKNOWN, haggling goes on", async () => {
  await using fx = NbdFixture.start({ db0: new MemoryDevice(MiB) });
  const c = await fx.connect();
  await c.start();
  for (const opt of [OPT.INFO, OPT.GO]) {
    await c.sendOption(opt, infoRequest("nope"));
    const r = await c.readOptionReply();
    assert.equal(r.type, REP.ERR_UNKNOWN);
    assert.match(text(r.data), /Export "nope" does not exist/);
  }
  await c.go("db0");
});

Deno.test("unsupported and malformed options are answered and haggling goes on", async (t) => {
  await using fx = NbdFixture.start({ db0: new MemoryDevice(MiB) });
  const c = await fx.connect();
  await c.start();
  const cases: [string, number, Uint8Array, number][] = [
    ["STARTTLS (no TLS)", OPT.STARTTLS, new Uint8Array(0), REP.ERR_UNSUP],
    [
      "SET_META_CONTEXT before structured replies",
      SET_META_CONTEXT,
      new Uint8Array(8),
      REP.ERR_INVALID,
    ],
    [
      "LIST_META_CONTEXT with data left over",
      LIST_META_CONTEXT,
      new Uint8Array(12),
      REP.ERR_INVALID,
    ],
    ["unknown option 4711 with data", 4711, new Uint8Array(100), REP.ERR_UNSUP],
    [
      "GO with a name longer than its data",
      OPT.GO,
      new Uint8Array([0, 0, 0, 9, 0, 0]),
      REP.ERR_INVALID,
    ],
    ["STRUCTURED_REPLY with data", OPT.STRUCTURED, new Uint8Array(1), REP.ERR_INVALID],
    ["option data over 16 KiB", 4711, new Uint8Array(100 * KiB), REP.ERR_TOO_BIG],
  ];
  for (const [what, opt, data, type] of cases) {
    await t.step(what, async () => {
      await c.sendOption(opt, data);
      const r = await c.readOptionReply();
      assert.equal(r.option, opt);
      assert.equal(r.type, type);
    });
  }
  await c.go("db0");
  assert.equal((await c.write(0, pattern(100))).error, 0);
});

Deno.test("NBD_OPT_ABORT is acknowledged and the connection closed", async () => {
  await using fx = NbdFixture.start({ db0: new MemoryDevice(MiB) });
  const c = await fx.connect();
  await c.start();
  await c.sendOption(OPT.ABORT);
  const r = await c.readOptionReply();
  assert.deepEqual([r.option, r.type], [OPT.ABORT, REP.ACK]);
  assert.ok(await c.closedWithin(2000));
});

Deno.test("NBD_OPT_EXPORT_NAME", async (t) => {
  await using fx = NbdFixture.start({ db0: new MemoryDevice(MiB) });
  for (const [what, clientFlags, replyBytes] of [["NO_ZEROES", 3, 10], ["with zeroes", 1, 134]]) {
    await t.step(`${what}: ${replyBytes} bytes, then transmission`, async () => {
      const c = await fx.connect();
      await c.start(clientFlags as number);
      await c.sendOption(OPT.EXPORT_NAME, new TextEncoder().encode("db0"));
      const reply = await c.readBytes(replyBytes as number);
      assert.equal(dv(reply).getBigUint64(0), BigInt(MiB));
      assert.equal(dv(reply).getUint16(8), FLAGS);
      assert.ok(reply.subarray(10).every((b) => b === 0));
      const r = await c.write(5, pattern(10));
      assert.equal(r.error, 0);
    });
  }
  await t.step(
    "an unknown export ends the session (the option cannot answer an error)",
    async () => {
      const c = await fx.connect();
      await c.start();
      await c.sendOption(OPT.EXPORT_NAME, new TextEncoder().encode("nope"));
      assert.ok(await c.closedWithin(2000));
    },
  );
});

Deno.test("handshake: a bad option magic ends the connection", async () => {
  await using fx = NbdFixture.start({ db0: new MemoryDevice(MiB) });
  const c = await fx.connect();
  await c.start();
  await c.send(new Uint8Array(16).fill(0x41));
  assert.ok(await c.closedWithin(2000));
});

Deno.test("simple replies: every command reaches the device as asked, FUA included", async () => {
  const { mem, rec } = recorded();
  await using fx = NbdFixture.start({ db0: rec });
  const c = await fx.open("db0");
  const data = pattern(10_000, 7);
  assert.equal((await c.write(4097, data, FUA)).error, 0);
  assert.deepEqual(mem.bytes.subarray(4097, 4097 + data.length), data);
  const read = await c.read(4097, data.length);
  assert.equal(read.structured, false);
  assert.deepEqual(read.data, data);
  assert.equal((await c.request({ type: CMD.FLUSH, offset: 0, length: 0 }).reply).error, 0);
  assert.equal((await c.request({ type: CMD.TRIM, offset: 4097, length: 100 }).reply).error, 0);
  const z = c.request({ type: CMD.ZEROES, offset: 5000, length: 100, flags: FUA | NO_HOLE });
  assert.equal((await z.reply).error, 0);
  assert.ok(mem.bytes.subarray(4097, 4197).every((b) => b === 0));
  assert.ok(mem.bytes.subarray(5000, 5100).every((b) => b === 0));
  assert.deepEqual(
    rec.calls.map((x) => [x.op, x.offset, x.length, x.fua]),
    [
      ["write", 4097, 10_000, true],
      ["read", 4097, 10_000, false],
      ["flush", 0, 0, false],
      ["trim", 4097, 100, false],
      ["writeZeroes", 5000, 100, true],
    ],
  );
});

Deno.test("structured replies: READ is one OFFSET_DATA chunk marked DONE, errors carry a message", async () => {
  const mem = new MemoryDevice(MiB, (b) => b.set(pattern(MiB, 3)));
  await using fx = NbdFixture.start({ db0: mem });
  const c = await fx.connect();
  await c.start();
  const go = await c.go("db0", { structured: true });
  assert.equal(go.flags, FLAGS | SEND_DF);
  const r = await c.read(12345, 3000, DF);
  assert.equal(r.structured, true);
  assert.deepEqual(r.chunks!.map((x) => [x.type, x.flags, x.payload.length]), [[1, 1, 3008]]);
  assert.equal(dv(r.chunks![0].payload).getBigUint64(0), 12345n);
  assert.deepEqual(r.data, mem.bytes.subarray(12345, 15345));

  const bad = await c.read(MiB - 10, 11);
  assert.equal(bad.structured, true);
  assert.equal(bad.error, EINVAL);
  assert.deepEqual(bad.chunks!.map((x) => [x.type, x.flags]), [[0x8001, 1]]);
  assert.match(bad.message!, /NBD_CMD_READ at 1048566\+11 .* exceeds export size 1048576/);

  const w = await c.write(0, pattern(512)); // other commands may answer simply
  assert.deepEqual([w.structured, w.error], [false, 0]);
});

Deno.test("replies come back out of order, matched by cookie", async () => {
  const mem = new MemoryDevice(MiB, (b) => b.set(pattern(MiB, 5)));
  const gate = new GateDevice(mem, (op, offset) => op === "read" && offset === 0);
  await using fx = NbdFixture.start({ db0: gate });
  fx.beforeClose(() => gate.openAll());
  const c = await fx.open("db0");
  const slow = c.request({ type: CMD.READ, offset: 0, length: 4096 });
  await gate.until(1);
  const fast = c.request({ type: CMD.READ, offset: 8192, length: 4096 });
  assert.deepEqual((await fast.reply).data, mem.bytes.subarray(8192, 12288));
  gate.release();
  assert.deepEqual((await slow.reply).data, mem.bytes.subarray(0, 4096));
  assert.deepEqual(c.replyOrder, [fast.cookie, slow.cookie]);
});

Deno.test("requests of one connection run at the device concurrently", async () => {
  const { mem, rec } = recorded();
  const gate = new GateDevice(rec, (op) => op === "write");
  await using fx = NbdFixture.start({ db0: gate });
  fx.beforeClose(() => gate.openAll());
  const c = await fx.open("db0");
  const writes = Array.from({ length: 8 }, (_, i) => c.write(i * 4096, pattern(4096, i + 1)));
  await gate.until(8); // all eight at the device while none is answered
  assert.equal(c.pendingCount, 8);
  gate.release();
  for (const r of await Promise.all(writes)) assert.equal(r.error, 0);
  for (let i = 0; i < 8; i++) {
    assert.deepEqual(mem.bytes.subarray(i * 4096, (i + 1) * 4096), pattern(4096, i + 1));
  }
});

Deno.test("backpressure: no more than inflightMax requests are read from the socket", async () => {
  const mem = new MemoryDevice(MiB);
  let holding = true;
  const gate = new GateDevice(mem, () => holding);
  const rec = new RecordingDevice(gate); // records arrivals, before the gate holds them
  await using fx = NbdFixture.start({ db0: rec }, { inflightMax: 4 });
  fx.beforeClose(() => gate.openAll());
  const c = await fx.open("db0");
  const writes = Array.from({ length: 10 }, (_, i) => c.write(i * 512, pattern(512, i + 1)));
  await gate.until(4);
  await sleep(100);
  assert.equal(gate.waiting, 4);
  assert.equal(rec.calls.length, 4);
  holding = false;
  gate.release();
  for (const r of await Promise.all(writes)) assert.equal(r.error, 0);
  assert.equal(rec.calls.length, 10);
  assert.deepEqual(mem.bytes.subarray(9 * 512, 10 * 512), pattern(512, 10));
});

Deno.test("backpressure: inflightBytesMax bounds the data in flight", async () => {
  const { rec } = recorded();
  let holding = true;
  const gate = new GateDevice(rec, () => holding);
  await using fx = NbdFixture.start({ db0: gate }, { inflightBytesMax: 8 * KiB });
  fx.beforeClose(() => gate.openAll());
  const c = await fx.open("db0");
  const writes = Array.from({ length: 6 }, (_, i) => c.write(i * 4096, pattern(4096, i + 1)));
  await gate.until(2);
  await sleep(100);
  assert.equal(gate.waiting, 2);
  holding = false;
  gate.release();
  for (const r of await Promise.all(writes)) assert.equal(r.error, 0);
});

Deno.test("a bad request magic closes that connection only, and nothing is written", async () => {
  const { rec } = recorded();
  await using fx = NbdFixture.start({ db0: rec });
  const bad = await fx.open("db0");
  const good = await fx.open("db0");
  const request = RawNbdClient.encodeRequest(
    { type: CMD.WRITE, offset: 0, length: 512, cookie: 1n, data: pattern(512) },
    0x25609514,
  );
  await bad.send(request);
  assert.ok(await bad.closedWithin(2000));
  assert.equal(rec.wrote, false);
  assert.equal((await good.write(0, pattern(512))).error, 0);
  assert.equal((await (await fx.open("db0")).read(0, 512)).error, 0);
  assert.match(fx.logs.join("\n"), /Bad magic 0x25609514/);
});

Deno.test("random garbage, in the handshake or after it, writes nothing and harms no one", async () => {
  const { rec } = recorded();
  await using fx = NbdFixture.start({ db0: rec }, { log: () => {} });
  const witness = await fx.open("db0");
  for (let seed = 1; seed <= 40; seed++) {
    const garbage = pattern(29 + (seed * 7919) % 5000, seed);
    garbage[0] = 0x55; // never the request magic 0x25609513, never IHAVEOPT
    if (seed % 4 === 0) {
      // A request magic with random fields and a type that writes nothing; the bytes after it
      // are garbage again.
      dv(garbage).setUint32(0, 0x25609513);
      dv(garbage).setUint16(6, [0, 3, 5, 7, 99, 1000][seed % 6]);
      garbage[28] = 0x55;
    }
    const c = await fx.connect();
    if (seed % 2 === 0) {
      await c.start();
      await c.go("db0");
    }
    await c.send(garbage).catch(() => {});
    c.close();
  }
  await eventually(() => fx.server.connections === 1, 5000, "the garbage connections to close");
  assert.equal(rec.wrote, false);
  assert.equal((await witness.write(0, pattern(64))).error, 0);
  assert.deepEqual((await witness.read(0, 64)).data, pattern(64));
});

Deno.test("refused requests never reach the device and the connection stays in step", async (t) => {
  const { mem, rec } = recorded();
  await using fx = NbdFixture.start({ db0: rec }, { requestBytesMax: 64 * KiB });
  const c = await fx.open("db0");
  const cases: [string, Parameters<RawNbdClient["request"]>[0], number][] = [
    ["unknown command 99", { type: 99, offset: 0, length: 512 }, EINVAL],
    ["NBD_CMD_CACHE (not offered)", { type: CMD.CACHE, offset: 0, length: 512 }, EINVAL],
    [
      "NBD_CMD_BLOCK_STATUS (no meta context)",
      { type: CMD.STATUS, offset: 0, length: 512 },
      EINVAL,
    ],
    ["read past the end", { type: CMD.READ, offset: MiB - 511, length: 512 }, EINVAL],
    ["trim past the end", { type: CMD.TRIM, offset: MiB, length: 1 }, EINVAL],
    [
      "write past the end",
      { type: CMD.WRITE, offset: MiB - 1, length: 2, data: pattern(2) },
      ENOSPC,
    ],
    ["write zeroes past the end", { type: CMD.ZEROES, offset: MiB - 1, length: 2 }, ENOSPC],
    ["write at an offset of 2^63", {
      type: CMD.WRITE,
      offset: 2 ** 63,
      length: 4,
      data: pattern(4),
    }, ENOSPC],
    ["read of length 0", { type: CMD.READ, offset: 0, length: 0 }, EINVAL],
    ["write of length 0", { type: CMD.WRITE, offset: 0, length: 0 }, EINVAL],
    ["trim of length 0", { type: CMD.TRIM, offset: 0, length: 0 }, EINVAL],
    ["read over requestBytesMax", { type: CMD.READ, offset: 0, length: 64 * KiB + 1 }, EINVAL],
    [
      "write over requestBytesMax (payload drained)",
      { type: CMD.WRITE, offset: 0, length: 200 * KiB, data: pattern(200 * KiB) },
      EINVAL,
    ],
    ["write with NO_HOLE", {
      type: CMD.WRITE,
      offset: 0,
      length: 4,
      flags: NO_HOLE,
      data: pattern(4),
    }, EINVAL],
    [
      "read with DF without structured replies",
      { type: CMD.READ, offset: 0, length: 4, flags: DF },
      EINVAL,
    ],
    ["flush with a length", { type: CMD.FLUSH, offset: 0, length: 4 }, EINVAL],
  ];
  for (const [what, request, error] of cases) {
    await t.step(what, async () => {
      const r = await c.request(request).reply;
      assert.equal(r.error, error);
      assert.equal(r.data, undefined);
    });
  }
  assert.deepEqual(rec.calls, []);
  assert.ok(mem.bytes.every((b) => b === 0));
  // The stream is still in step: a valid request after all of that works.
  assert.equal((await c.write(100, pattern(100))).error, 0);
  assert.deepEqual((await c.read(100, 100)).data, pattern(100));
});

Deno.test("a write far over the maximum gets EINVAL, its payload drained, the connection kept", async () => {
  const { mem, rec } = recorded();
  await using fx = NbdFixture.start({ db0: rec }, { requestBytesMax: 64 * KiB });
  const c = await fx.open("db0");
  // 40 MiB: above the 32 MiB that used to be drained; the server used to hang up here.
  const big = c.request({ type: CMD.WRITE, offset: 0, length: 40 * MiB, data: pattern(40 * MiB) });
  assert.equal((await big.reply).error, 22);
  assert.equal(rec.wrote, false);
  assert.equal((await c.write(0, pattern(10))).error, 0);
  assert.deepEqual(mem.bytes.subarray(0, 10), pattern(10));
});

Deno.test("a client hanging up inside a header or a payload writes nothing", async () => {
  const { rec } = recorded();
  await using fx = NbdFixture.start({ db0: rec });
  const partialHeader = await fx.open("db0");
  const write = RawNbdClient.encodeRequest({
    type: CMD.WRITE,
    offset: 0,
    length: 8 * KiB,
    cookie: 1n,
    data: pattern(8 * KiB),
  });
  await partialHeader.send(write.subarray(0, 20));
  const partialPayload = await fx.open("db0");
  await partialPayload.send(write.subarray(0, 28 + 5000));
  await sleep(50);
  partialHeader.close();
  partialPayload.close();
  await eventually(() => fx.server.connections === 0, 2000, "both connections to close");
  assert.equal(rec.wrote, false);
  assert.match(
    fx.logs.join("\n"),
    /inside a request header[\s\S]*inside the payload of NBD_CMD_WRITE/,
  );
  const next = await fx.open("db0");
  assert.equal((await next.write(0, pattern(10))).error, 0);
});

Deno.test("device errors answer EIO and the connection stays up", async () => {
  const mem = new MemoryDevice(MiB);
  const faulty = new FaultDevice(mem, (op) => op === "write", "Backup and tracker both down");
  await using fx = NbdFixture.start({ db0: faulty });
  const simple = await fx.open("db0");
  const structured = await fx.open("db0", { structured: true });

  assert.equal((await simple.write(0, pattern(512))).error, EIO);
  const s = await structured.write(0, pattern(512));
  assert.equal(s.error, EIO);
  assert.match(s.message!, /NBD_CMD_WRITE at 0\+512 failed: Backup and tracker both down/);
  assert.ok(mem.bytes.every((b) => b === 0));
  assert.equal((await simple.read(0, 512)).error, 0); // reads still work

  faulty.failing = false;
  assert.equal((await simple.write(0, pattern(512))).error, 0);
  assert.equal((await structured.write(512, pattern(512))).error, 0);
});

Deno.test("a failed or short device read answers EIO without sending data", async () => {
  const mem = new MemoryDevice(MiB);
  const faulty = new FaultDevice(mem, (op) => op === "read");
  let short = false;
  const shortening = new class extends PassThroughDevice {
    override async read(offset: number, length: number) {
      const data = await super.read(offset, length);
      return short ? data.subarray(1) : data;
    }
  }(faulty);
  await using fx = NbdFixture.start({ db0: shortening });
  const simple = await fx.open("db0");
  const structured = await fx.open("db0", { structured: true });
  const r1 = await simple.read(0, 4096);
  assert.deepEqual([r1.error, r1.data], [EIO, undefined]);
  const r2 = await structured.read(0, 4096);
  assert.deepEqual([r2.error, r2.data], [EIO, undefined]);
  assert.deepEqual(r2.chunks!.map((x) => [x.type, x.flags]), [[0x8001, 1]]);
  faulty.failing = false;
  short = true;
  const r3 = await structured.read(0, 4096);
  assert.equal(r3.error, EIO);
  assert.match(r3.message!, /Device returned 4095 bytes for a read of 4096/);
  short = false;
  // Both streams are still in step.
  assert.equal((await simple.read(0, 4096)).data!.length, 4096);
  assert.equal((await structured.read(0, 4096)).data!.length, 4096);
});

Deno.test("NBD_CMD_DISC: requests in flight are answered, then the connection closes", async () => {
  const { mem, rec } = recorded();
  const gate = new GateDevice(rec, (op) => op === "write");
  await using fx = NbdFixture.start({ db0: gate });
  fx.beforeClose(() => gate.openAll());
  const c = await fx.open("db0");
  const w = c.request({ type: CMD.WRITE, offset: 0, length: 512, data: pattern(512) });
  await gate.until(1);
  await c.sendOnly({ type: CMD.DISC, offset: 0, length: 0 });
  await sleep(100);
  assert.equal(fx.server.connections, 1); // still open: the write is in flight
  gate.release();
  assert.equal((await w.reply).error, 0);
  await c.ended();
  assert.deepEqual(mem.bytes.subarray(0, 512), pattern(512));
  await eventually(() => fx.server.connections === 0, 2000, "the connection to close");
});

Deno.test("TRIM and WRITE_ZEROES longer than requestBytesMax reach the device in pieces", async () => {
  const { rec } = recorded();
  await using fx = NbdFixture.start({ db0: rec }, { requestBytesMax: 64 * KiB });
  const c = await fx.open("db0");
  const trim = c.request({ type: CMD.TRIM, offset: 1000, length: 200 * KiB, flags: FUA });
  assert.equal((await trim.reply).error, 0);
  const zero = c.request({ type: CMD.ZEROES, offset: 0, length: 128 * KiB });
  assert.equal((await zero.reply).error, 0);
  assert.deepEqual(rec.calls.map((x) => [x.op, x.offset, x.length, x.fua]), [
    ["trim", 1000, 64 * KiB, true],
    ["trim", 1000 + 64 * KiB, 64 * KiB, true],
    ["trim", 1000 + 128 * KiB, 64 * KiB, true],
    ["trim", 1000 + 192 * KiB, 8 * KiB, true],
    ["writeZeroes", 0, 64 * KiB, false],
    ["writeZeroes", 64 * KiB, 64 * KiB, false],
  ]);
});

Deno.test("a write answered on one connection is visible on another (multi-conn)", async () => {
  const mem = new MemoryDevice(MiB);
  await using fx = NbdFixture.start({ db0: mem });
  const a = await fx.open("db0");
  const b = await fx.open("db0", { structured: true });
  assert.equal((await a.write(777, pattern(3000, 9))).error, 0);
  assert.deepEqual((await b.read(777, 3000)).data, pattern(3000, 9));
});

Deno.test("close() lets requests in flight finish, refuses new ones, then closes everything", async () => {
  const { mem, rec } = recorded();
  const gate = new GateDevice(rec, (op) => op === "write");
  await using fx = NbdFixture.start({ db0: gate });
  fx.beforeClose(() => gate.openAll());
  const idle = await fx.connect();
  await idle.start(); // still haggling
  const c = await fx.open("db0");
  const w = c.request({ type: CMD.WRITE, offset: 0, length: 512, data: pattern(512) });
  await gate.until(1);
  let closed = false;
  const closing = fx.server.close().then(() => closed = true);
  assert.ok(await idle.closedWithin(2000), "a connection still haggling closes at once");
  const late = await c.read(0, 512);
  assert.equal(late.error, ESHUTDOWN);
  await sleep(50);
  assert.equal(closed, false);
  gate.release();
  assert.equal((await w.reply).error, 0);
  await closing;
  await c.ended();
  assert.deepEqual(mem.bytes.subarray(0, 512), pattern(512));
  await assert.rejects(Deno.connect({ hostname: "127.0.0.1", port: fx.server.port }));
});

Deno.test("a client that does not choose an export in time is disconnected", async () => {
  await using fx = NbdFixture.start({ db0: new MemoryDevice(MiB) }, { handshakeTimeoutMs: 200 });
  const c = await fx.connect();
  await c.start();
  assert.ok(await c.closedWithin(2000));
  assert.match(fx.logs.join("\n"), /no export chosen within 200 ms/);
});

Deno.test("connections beyond connectionsMax are refused", async () => {
  await using fx = NbdFixture.start({ db0: new MemoryDevice(MiB) }, { connectionsMax: 1 });
  const first = await fx.open("db0");
  const second = await fx.connect();
  await assert.rejects(second.readGreeting(), /closed/);
  assert.equal((await first.read(0, 10)).error, 0);
});

Deno.test("a unix socket serves the same exports", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/nbd.sock`;
  const mem = new MemoryDevice(MiB);
  await using fx = NbdFixture.start({ db0: mem }, { socketPath: path });
  const c = await fx.connect({ path });
  await c.start();
  await c.go("db0");
  assert.equal((await c.write(10, pattern(100))).error, 0);
  assert.deepEqual(mem.bytes.subarray(10, 110), pattern(100));
  await fx[Symbol.asyncDispose]();
  await assert.rejects(Deno.stat(path), Deno.errors.NotFound); // removed on close
  await Deno.remove(dir, { recursive: true });
});

Deno.test("serveNbd refuses a requestBytesMax outside its bounds", () => {
  for (const requestBytesMax of [4095, 512 * MiB, 1.5]) {
    assert.throws(
      () => NbdFixture.start({}, { requestBytesMax }),
      new RegExp(`requestBytesMax ${requestBytesMax} must be`),
    );
  }
});
