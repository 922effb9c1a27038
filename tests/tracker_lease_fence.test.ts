/**
 * One writer per volume at the tracker: the lease names an agent instance, a second instance is
 * refused with 409 naming the holder and its URL whatever host id it uses (except a restart of
 * the same agent on the same primary), every change of owning instance raises the lease epoch,
 * and marks of an older lease epoch or another instance are refused as fenced.
 */
import assert from "node:assert/strict";
import { ServiceError } from "../src/errors.ts";
import { volumeRegistration } from "../src/schemas.ts";
import type { VolumeRecord } from "../tracker/kv_layout.ts";
import { decideRegistration } from "../tracker/registration.ts";
import { trackerHarness } from "./support/tracker_harness.ts";

const now = 1_000_000;
const reg = (fields: Record<string, unknown>) =>
  volumeRegistration.parse({
    sizeBytes: 1 << 20,
    ownerUrl: "http://127.0.0.1:9001",
    ...fields,
  });

/** The record of agent "a1" (host h0, primary /p/a.img) holding the volume at lease epoch 3. */
const held: VolumeRecord = {
  ...decideRegistration(
    undefined,
    "vol0",
    reg({ ownerHost: "h0", ownerInstance: "a1", ownerPrimary: "m:/p/a.img" }),
    now,
  ),
  leaseEpoch: 3,
};

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ServiceError, String(err));
    assert.equal(err.status, 409);
    return err.message;
  }
  assert.fail("expected a 409");
}

Deno.test("a new volume's lease starts at epoch 1 and names its instance and primary", () => {
  const rec = decideRegistration(
    undefined,
    "vol0",
    reg({ ownerHost: "h0", ownerInstance: "a1", ownerPrimary: "m:/p/a.img" }),
    now,
  );
  assert.equal(rec.leaseEpoch, 1);
  assert.equal(rec.ownerInstance, "a1");
  assert.equal(rec.ownerPrimary, "m:/p/a.img");
});

Deno.test("another instance is refused while the lease runs, naming the holder and its URL, whatever host id it uses", async (t) => {
  for (
    const [label, fields] of [
      ["same host id, other primary", { ownerHost: "h0", ownerPrimary: "m:/p/b.img" }],
      ["same host id, no primary", { ownerHost: "h0" }],
      ["other host id, same primary", { ownerHost: "h9", ownerPrimary: "m:/p/a.img" }],
    ] as const
  ) {
    await t.step(label, () => {
      const message = refusal(() =>
        decideRegistration(
          held,
          "vol0",
          reg({ ...fields, ownerInstance: "b2", ownerUrl: "http://127.0.0.1:9002" }),
          now + 1,
        )
      );
      assert.match(message, /leased to host "h0" \(instance a1, http:\/\/127\.0\.0\.1:9001\)/);
      assert.match(message, /instance b2\) needs takeover/);
    });
  }
});

Deno.test("a restart of the same agent (same host id, same primary) takes the lease back at once with a new epoch", () => {
  const rec = decideRegistration(
    held,
    "vol0",
    reg({ ownerHost: "h0", ownerInstance: "a2", ownerPrimary: "m:/p/a.img" }),
    now + 1,
  );
  assert.equal(rec.ownerInstance, "a2");
  assert.equal(rec.leaseEpoch, 4);
});

Deno.test("a renewal by the holding instance keeps the lease epoch", () => {
  const rec = decideRegistration(
    held,
    "vol0",
    reg({ ownerHost: "h0", ownerInstance: "a1", ownerPrimary: "m:/p/a.img" }),
    now + 1,
  );
  assert.equal(rec.leaseEpoch, 3);
  assert.equal(rec.leaseExpiresAt, now + 1 + 30_000);
});

Deno.test("takeover and expiry hand the lease to another instance and raise the epoch by one", () => {
  const other = { ownerHost: "h0", ownerInstance: "b2", ownerPrimary: "m:/p/b.img" };
  const taken = decideRegistration(held, "vol0", reg({ ...other, takeover: true }), now + 1);
  assert.equal(taken.ownerInstance, "b2");
  assert.equal(taken.leaseEpoch, 4);
  const expired = decideRegistration(held, "vol0", reg(other), held.leaseExpiresAt + 1);
  assert.equal(expired.ownerInstance, "b2");
  assert.equal(expired.leaseEpoch, 4);
});

Deno.test("a claimed lease epoch is never moved back, and a forged huge one is refused with 400", () => {
  const again = decideRegistration(
    { ...held, leaseEpoch: 1 },
    "vol0",
    reg({ ownerHost: "h0", ownerInstance: "a1", ownerPrimary: "m:/p/a.img", leaseEpoch: 7 }),
    now + 1,
  );
  assert.equal(again.leaseEpoch, 7);
  assert.throws(
    () =>
      decideRegistration(
        held,
        "vol0",
        reg({ ownerHost: "h0", ownerInstance: "a1", leaseEpoch: Number.MAX_SAFE_INTEGER }),
        now + 1,
      ),
    (err: unknown) =>
      err instanceof ServiceError && err.status === 400 &&
      /lease epoch 9007199254740991 is more than leaseEpochStepMax 1048576 above the tracker's 3/
        .test(err.message),
  );
});

Deno.test("after a takeover the old instance's marks, activity and clears are fenced; the new owner's and claimless ones pass", async () => {
  const h = await trackerHarness();
  try {
    const base = { sizeBytes: 1 << 20, regionBytes: 512 };
    const first = await h.ok("PUT", "/v1/volumes/vol0", {
      ...base,
      ownerHost: "h0",
      ownerUrl: "http://127.0.0.1:9001",
      ownerInstance: "a1",
      ownerPrimary: "m:/p/a.img",
    });
    assert.equal(first.leaseEpoch, 1);
    const second = await h.ok("PUT", "/v1/volumes/vol0", {
      ...base,
      ownerHost: "h0",
      ownerUrl: "http://127.0.0.1:9002",
      ownerInstance: "b2",
      ownerPrimary: "m:/p/b.img",
      takeover: true,
    });
    assert.equal(second.leaseEpoch, 2);
    assert.equal(second.ownerInstance, "b2");

    const extents = [{ offset: 0, length: 512 }];
    const old = { instance: "a1", leaseEpoch: 1 };
    const stale = await h.req("POST", "/v1/track", { volume: "vol0", host: "h0", extents, ...old });
    assert.equal(stale.status, 409);
    assert.match(
      stale.json.error.message,
      /^Volume "vol0" is fenced: lease epoch 1 is older than 2; host "h0" \(instance b2, http:\/\/127\.0\.0\.1:9002\) holds it/,
    );
    const activity = await h.req("POST", "/v1/activity", {
      volume: "vol0",
      host: "h0",
      extents,
      ...old,
    });
    assert.equal(activity.status, 409);
    const forged = await h.req("POST", "/v1/track", {
      volume: "vol0",
      host: "h0",
      extents,
      instance: "a1",
      leaseEpoch: 2,
    });
    assert.equal(forged.status, 409, "the right epoch from the wrong instance");
    assert.match(forged.json.error.message, /instance a1 does not hold the lease/);
    const clear = await h.req("POST", "/v1/volumes/vol0/clear", { token: "0", ...old });
    assert.equal(clear.status, 409);
    assert.equal((await h.info("vol0")).dirtyRegions, 0, "nothing of the fenced agent counted");

    await h.ok("POST", "/v1/track", {
      volume: "vol0",
      host: "h0",
      extents,
      instance: "b2",
      leaseEpoch: 2,
    });
    await h.ok("POST", "/v1/track", {
      volume: "vol0",
      host: "h0",
      extents: [{ offset: 512, length: 1 }],
    });
    assert.equal((await h.info("vol0")).dirtyRegions, 2);
  } finally {
    await h.close();
  }
});
