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
import { concat, exportName, requestBytesMax, sizeBytes, stream } from "./support/nbd_streams.ts";

/** Smaller than the server's 256 KiB, so payloads also take the direct-read path. */
const readerBytes = 40 * 1024;

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
