/**
 * The journal's inline fdatasync (journal.ts `syncInline`): groups are synced on the event loop's
 * thread only while the owner allows it, every group stays durable before it is acknowledged, and
 * a slow sync turns inline syncs off for `inlineSyncPauseMs`. Over a real backup with its link:
 * inline while every host acknowledges durably, on Deno's blocking pool while a `received` link is
 * open (its receipt acks must not wait for a sync).
 */
import assert from "node:assert/strict";
import { inlineSyncPauseMs, inlineSyncSlowMs, Journal } from "../backup/journal.ts";
import { replayJournal } from "../backup/journal_replay.ts";
import { openBackup } from "../backup/service.ts";
import { LinkClient } from "../host/link/link_client.ts";
import { encodeRecord } from "../src/journal_record.ts";
import { randomBytes, seededRandom } from "../src/random.ts";

const block = 4096;

function record(offset: number, seed: number): Uint8Array {
  const data = randomBytes(seededRandom(seed), block);
  return encodeRecord({ kind: "write", volume: "db0", offset, length: block, data });
}

/** A fresh journal in a temp dir, with `syncInline` and clock of the test's choosing. */
async function openJournal(
  dir: string,
  opts: { syncInline: () => boolean; now?: () => number },
): Promise<Journal> {
  const replayed = await replayJournal(dir, () => {}, () => {});
  return await Journal.open(
    { dir, journalBytesMax: 64 * 1024 * 1024, journalSegmentBytes: 1024 * 1024, ...opts },
    replayed,
  );
}

Deno.test("journal syncs inline only when its owner allows it, and each group is durable first", async () => {
  const dir = await Deno.makeTempDir({ prefix: "journal_inline_" });
  try {
    let allow = false;
    const journal = await openJournal(dir, { syncInline: () => allow });
    await journal.append(record(0, 1), 1);
    assert.equal(journal.inlineSyncs, 0, "not allowed: synced on the blocking pool");
    allow = true;
    await journal.append(record(block, 2), 1);
    await Promise.all([journal.append(record(2 * block, 3), 1), journal.append(record(0, 4), 1)]);
    assert.ok(journal.inlineSyncs >= 2, `${journal.inlineSyncs} inline syncs`);
    assert.equal(journal.recordsAcknowledged, 4);
    await journal.close();
    // What was acknowledged is what replay finds, in order.
    const found: number[] = [];
    await replayJournal(dir, (rec) => void found.push(rec.offset), () => {});
    assert.deepEqual(found, [0, block, 2 * block, 0]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a sync slower than inlineSyncSlowMs turns inline syncs off for inlineSyncPauseMs", async () => {
  const dir = await Deno.makeTempDir({ prefix: "journal_inline_" });
  try {
    // The clock moves only when told to, except that the first sync "takes" longer than the bound.
    let now = 1_000;
    let slow = true;
    const journal = await openJournal(dir, {
      syncInline: () => true,
      now: () => {
        const t = now;
        if (slow) now += inlineSyncSlowMs + 1;
        return t;
      },
    });
    await journal.append(record(0, 1), 1);
    slow = false;
    assert.equal(journal.inlineSyncs, 1, "the slow sync itself ran inline");
    await journal.append(record(block, 2), 1);
    assert.equal(journal.inlineSyncs, 1, "after a slow sync: on the blocking pool");
    now += inlineSyncPauseMs;
    await journal.append(record(2 * block, 3), 1);
    assert.equal(journal.inlineSyncs, 2, "inline again once the pause is over");
    await journal.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("over the link: inline while hosts ack durably, never while a received link is open", async () => {
  const dir = await Deno.makeTempDir({ prefix: "journal_inline_link_" });
  const backup = await openBackup({
    dataDir: dir,
    link: { hostname: "127.0.0.1", port: 0 },
    log: () => {},
  });
  const address = `tcp://127.0.0.1:${backup.link!.port}`;
  const links: LinkClient[] = [];
  const connect = async (ack: "durable" | "received", hostId: string, volume: string) => {
    const volumes = [{ name: volume, sizeBytes: 1024 * 1024, epoch: 1 }];
    const link = new LinkClient({ address, hostId, ack, volumes });
    links.push(link);
    await link.open();
    return link;
  };
  const write = (link: LinkClient, i: number, volume = "db0") =>
    link.submit(volume, {
      kind: "write",
      offset: (i % 256) * block,
      length: block,
      data: randomBytes(seededRandom(i), block),
    });
  try {
    const durable = await connect("durable", "host-d", "db0");
    for (let i = 0; i < 4; i++) await write(durable, i);
    const inlineDurable = backup.journal.inlineSyncs;
    assert.ok(inlineDurable > 0, "durable hosts only: groups synced inline");

    const received = await connect("received", "host-r", "db1");
    await write(received, 100, "db1");
    for (let i = 4; i < 8; i++) await write(durable, i);
    await backup.journal.drained();
    assert.equal(
      backup.journal.inlineSyncs,
      inlineDurable,
      "a received link is open: no group synced inline",
    );
  } finally {
    for (const l of links) await l.close();
    await backup.close();
    await Deno.remove(dir, { recursive: true });
  }
});
