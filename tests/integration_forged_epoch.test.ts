/**
 * The "one request stops mirroring for good", with real processes: a forged
 * `PUT /v1/volumes/{name}` with `epoch: 9007199254740991` (or a huge `leaseEpoch`) gets 400 and
 * moves no fence, so the real host agent keeps mirroring — its next writes still go to the
 * backup, and its primary and the secondary stay equal.
 */
import assert from "node:assert/strict";
import { HostClient } from "../host/client.ts";
import { startSystem } from "../harness/system.ts";
import { randomBytes, seededRandom } from "../src/random.ts";

Deno.test("a forged huge epoch at the backup gets 400 and the real host keeps mirroring", async () => {
  const sys = await startSystem({ sizeBytes: 8 * 1024 * 1024 });
  try {
    await sys.waitMirroring();
    const host = new HostClient(sys.host.url, { timeoutMs: 10_000 });
    const rand = seededRandom(3);
    await host.write(sys.volume, 0, randomBytes(rand, 65536));
    for (
      const forged of [
        { epoch: 9007199254740991 },
        { epoch: 1, leaseEpoch: 9007199254740991 },
      ]
    ) {
      const res = await fetch(`${sys.backup.url}/v1/volumes/${sys.volume}`, {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ sizeBytes: sys.sizeBytes, ...forged }),
      });
      const body = await res.json();
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.match(
        body.error.message,
        /9007199254740991 is more than (epochAheadMsMax|leaseEpochStepMax)/,
      );
    }
    // The next write still goes to the backup over the same link: no fence moved.
    await host.write(sys.volume, 65536, randomBytes(rand, 65536));
    const status = await host.status();
    assert.equal(status.mode, "mirroring");
    assert.equal(status.volumes[0].fenced, false);
    assert.deepEqual(status.volumes[0].writes, {
      viaBackup: 2,
      viaTracker: 0,
      failed: 0,
      primaryFailed: 0,
    });
    await sys.flushBackup();
    assert.equal(await sys.sha256Secondary(), await sys.sha256Primary());
  } finally {
    await sys.stop();
  }
});
