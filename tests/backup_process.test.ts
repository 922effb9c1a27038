/**
 * The real backup process: batches sent concurrently, SIGKILL mid-stream, restart on the same
 * directory, and every acknowledged write must be in the secondary afterwards.
 */
import assert from "node:assert/strict";
import { randomBytes, seededRandom } from "../src/random.ts";
import { join } from "node:path";
import { BackupClient, encodeBatch } from "../backup/client.ts";
import { startService } from "../harness/service_process.ts";
import { runScript, sha256 } from "../harness/tools.ts";

const slotBytes = 16 * 1024;
const slots = 4096;
const volSize = slotBytes * slots;

/** The bytes slot `slot` is written with: unique per slot, so a misplaced write shows. */
function slotData(slot: number): Uint8Array {
  return randomBytes(seededRandom(slot * 2654435761 + 12345), slotBytes);
}

Deno.test("backup process keeps every acknowledged write across SIGKILL", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "backup_process_" });
  let proc = await startService("backup/main.ts", ["--data", dataDir]);
  try {
    const client = new BackupClient(proc.url, { timeoutMs: 5000 });
    await client.registerVolume("db0", volSize);

    // Writers take distinct slots, two per batch, so what an acknowledged slot must hold is known.
    const acknowledged: number[] = [];
    let nextSlot = 0;
    let failed = 0;
    let killed = false;
    let killing: Promise<void> | undefined;
    const writer = async () => {
      while (!killed && nextSlot + 2 <= slots) {
        const batchSlots = [nextSlot++, nextSlot++];
        const body = encodeBatch(batchSlots.map((slot) => ({
          kind: "write" as const,
          volume: "db0",
          offset: slot * slotBytes,
          length: slotBytes,
          data: slotData(slot),
        })));
        const sent = client.writeBatch("db0", body);
        // Kill while this batch (and likely others) is in flight, so the test proves something.
        if (!killed && acknowledged.length >= 400) {
          killed = true;
          killing = proc.kill();
        }
        try {
          await sent;
          acknowledged.push(...batchSlots);
        } catch {
          failed++;
        }
      }
    };
    const writers = Array.from({ length: 8 }, writer);
    // Writers stop starting batches once one of them killed the process mid-request.
    await Promise.all(writers);
    await killing;
    assert.ok(failed > 0, "No batch was in flight at the kill; the test proved nothing");

    proc = await startService("backup/main.ts", ["--data", dataDir]);
    const again = new BackupClient(proc.url);
    assert.deepEqual(await again.listVolumes(), [{ name: "db0", sizeBytes: volSize }]);
    await again.flush();
    const img = await Deno.readFile(join(dataDir, "volumes", "db0.img"));
    const missing = acknowledged.filter((slot) => {
      const got = img.subarray(slot * slotBytes, (slot + 1) * slotBytes);
      const want = slotData(slot);
      return !got.every((b, i) => b === want[i]);
    });
    assert.deepEqual(missing, [], `Acknowledged slots lost after SIGKILL:\n${proc.output()}`);
    // The same check as one digest over the acknowledged slots in order.
    const expected = new Uint8Array(acknowledged.length * slotBytes);
    const actual = new Uint8Array(acknowledged.length * slotBytes);
    acknowledged.sort((a, b) => a - b).forEach((slot, i) => {
      expected.set(slotData(slot), i * slotBytes);
      actual.set(img.subarray(slot * slotBytes, (slot + 1) * slotBytes), i * slotBytes);
    });
    assert.equal(await sha256(actual), await sha256(expected));
  } finally {
    await proc.stop();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("backup process exits 0 on SIGTERM, keeping what it acknowledged", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "backup_process_" });
  let proc = await startService("backup/main.ts", ["--data", dataDir]);
  try {
    const client = new BackupClient(proc.url);
    await client.registerVolume("db0", volSize);
    const send = (slot: number) =>
      client.writeBatch(
        "db0",
        encodeBatch([{
          kind: "write",
          volume: "db0",
          offset: slot * slotBytes,
          length: slotBytes,
          data: slotData(slot),
        }]),
      ).then(() => slot);
    const inFlight = Array.from({ length: 32 }, (_, slot) => send(slot));
    await Promise.race(inFlight);
    proc.child.kill("SIGTERM");
    const results = await Promise.allSettled(inFlight);
    assert.equal((await proc.child.status).code, 0, proc.output());
    assert.match(proc.output(), /listening on http:\/\/127\.0\.0\.1:\d+/);
    assert.match(proc.output(), /SIGTERM/);
    const acknowledged = results.flatMap((r) => r.status === "fulfilled" ? [r.value] : []);
    assert.ok(acknowledged.length > 0);

    await proc.stop();
    proc = await startService("backup/main.ts", ["--data", dataDir]);
    await new BackupClient(proc.url).flush();
    const img = await Deno.readFile(join(dataDir, "volumes", "db0.img"));
    for (const slot of acknowledged) {
      const got = img.subarray(slot * slotBytes, (slot + 1) * slotBytes);
      assert.equal(await sha256(got), await sha256(slotData(slot)), `slot ${slot}`);
    }
  } finally {
    await proc.stop();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("backup process exits 2 with a message naming a bad flag", async (t) => {
  const cases: [string[], RegExp][] = [
    [["--journal-bytes-max", "lots"], /--journal-bytes-max: Size "lots"/],
    [["--port", "99999"], /Port "99999"/],
    [["--frobnicate"], /frobnicate/],
  ];
  for (const [args, message] of cases) {
    await t.step(args.join(" "), async () => {
      const out = await runScript("backup/main.ts", args);
      assert.equal(out.code, 2);
      assert.match(out.stderr, message);
    });
  }
});
