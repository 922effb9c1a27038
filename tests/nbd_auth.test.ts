/**
 * NBD authentication in-process, driven by the raw spec client: with a token an export is named
 * VOLUME/TOKEN; a missing or wrong token is refused with NBD_REP_ERR_POLICY whether the volume
 * exists or not, the export list is withheld, repeated guesses close the connection, nothing is
 * written, and the token never reaches the log. Without a token plain names work as before.
 */
import assert from "node:assert/strict";
import { MemoryDevice, RecordingDevice } from "./support/memory_device.ts";
import { NbdFixture, pattern } from "./support/nbd_fixture.ts";
import { infoRequest, text } from "./support/nbd_raw_client.ts";

// Values from the spec, spelled out here rather than imported from the code under test.
const OPT = { EXPORT_NAME: 1, LIST: 3, INFO: 6, GO: 7 };
const REP = { ACK: 1, SERVER: 2, ERR_POLICY: 0x80000002, ERR_UNKNOWN: 0x80000006 };
const MiB = 1024 * 1024;
const token = "s3cret/with ?odd#chars%";

function guarded(opts: { token?: string } = { token }) {
  const mem = new MemoryDevice(MiB);
  const rec = new RecordingDevice(mem);
  const fx = NbdFixture.start({ db0: rec }, opts);
  return { fx, mem, rec };
}

Deno.test("with a token, VOLUME/TOKEN opens the volume and writes reach it", async () => {
  const { fx, mem } = guarded();
  await using _ = fx;
  const c = await fx.open(`db0/${token}`);
  assert.equal((await c.write(4096, pattern(4096))).error, 0);
  assert.deepEqual(mem.bytes.subarray(4096, 8192), pattern(4096));
  const r = await c.read(4096, 4096);
  assert.deepEqual(r.data, pattern(4096));
});

Deno.test("with a token, a missing or wrong one gets ERR_POLICY, known volume or not", async (t) => {
  const { fx, rec } = guarded();
  await using _ = fx;
  const cases: [string, string][] = [
    ["a plain volume name", "db0"],
    ["a wrong token", "db0/s3cret"],
    ["an empty token", "db0/"],
    ["the token with a space after it", `db0/${token} `],
    ["an unknown volume with no token", "nope"],
    ["an unknown volume with a wrong token", "nope/guess"],
  ];
  for (const [name, exportName] of cases) {
    await t.step(name, async () => {
      for (const opt of [OPT.INFO, OPT.GO]) {
        const c = await fx.connect();
        await c.start();
        await c.sendOption(opt, infoRequest(exportName));
        const r = await c.readOptionReply();
        assert.equal(r.type, REP.ERR_POLICY, text(r.data));
        assert.match(text(r.data), /VOLUME\/TOKEN/);
        assert.doesNotMatch(text(r.data), /db0|nope/, "the reply does not confirm a volume");
        c.close();
      }
    });
  }
  assert.deepEqual(rec.calls, [], "nothing reached the device");
  assert.doesNotMatch(fx.logs.join("\n"), /s3cret\/with/, "the token is never logged");
});

Deno.test("with a token, the right one on an unknown volume is ERR_UNKNOWN", async () => {
  const { fx } = guarded();
  await using _ = fx;
  const c = await fx.connect();
  await c.start();
  await c.sendOption(OPT.GO, infoRequest(`nope/${token}`));
  const r = await c.readOptionReply();
  assert.equal(r.type, REP.ERR_UNKNOWN);
  assert.match(text(r.data), /Export "nope" does not exist/);
  assert.doesNotMatch(text(r.data), /s3cret/);
});

Deno.test("with a token, NBD_OPT_LIST is refused and names no volume", async () => {
  const { fx } = guarded();
  await using _ = fx;
  const c = await fx.connect();
  await c.start();
  await c.sendOption(OPT.LIST);
  const r = await c.readOptionReply();
  assert.equal(r.type, REP.ERR_POLICY);
  assert.doesNotMatch(text(r.data), /db0/);
  await c.go(`db0/${token}`); // haggling went on
});

Deno.test("with a token, the third refused export name closes the connection", async () => {
  const { fx } = guarded();
  await using _ = fx;
  const c = await fx.connect();
  await c.start();
  for (const guess of ["db0/a", "db0/b"]) {
    await c.sendOption(OPT.GO, infoRequest(guess));
    assert.equal((await c.readOptionReply()).type, REP.ERR_POLICY);
  }
  await c.sendOption(OPT.LIST); // two refusals leave the connection open
  assert.equal((await c.readOptionReply()).type, REP.ERR_POLICY);
  await c.sendOption(OPT.GO, infoRequest("db0/c"));
  assert.equal((await c.readOptionReply()).type, REP.ERR_POLICY);
  assert.ok(await c.closedWithin(2000));
});

Deno.test("with a token, NBD_OPT_EXPORT_NAME needs it too", async (t) => {
  const { fx, rec } = guarded();
  await using _ = fx;
  for (const name of ["db0", "db0/guess", `nope/${token}`]) {
    await t.step(`"${name}" ends the session`, async () => {
      const c = await fx.connect();
      await c.start();
      await c.sendOption(OPT.EXPORT_NAME, new TextEncoder().encode(name));
      assert.ok(await c.closedWithin(2000));
    });
  }
  await t.step("VOLUME/TOKEN enters transmission", async () => {
    const c = await fx.connect();
    await c.start();
    await c.sendOption(OPT.EXPORT_NAME, new TextEncoder().encode(`db0/${token}`));
    await c.readBytes(10);
    assert.equal((await c.write(0, pattern(512))).error, 0);
  });
  assert.equal(rec.of("write").length, 1);
  assert.match(fx.logs.join("\n"), /names no export \("nope"\)/);
  assert.doesNotMatch(fx.logs.join("\n"), /guess|s3cret/);
});

Deno.test("without a token, a plain volume name works and the list names every export", async () => {
  const { fx } = guarded({});
  await using _ = fx;
  const c = await fx.connect();
  await c.start();
  await c.sendOption(OPT.LIST);
  const replies = await c.readOptionReplies();
  assert.deepEqual(replies.map((r) => r.type), [REP.SERVER, REP.ACK]);
  await c.go("db0");
  assert.equal((await c.write(0, pattern(512))).error, 0);
});
