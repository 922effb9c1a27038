/**
 * The tracker record's generation and mark sequence (issue 9): what lets a host tell the record it
 * knew from a lost one (a new generation) or an older copy of the KV (a lower sequence).
 */
import assert from "node:assert/strict";
import { regionBytesTest as R, trackerHarness as harness } from "./support/tracker_harness.ts";

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

Deno.test("a volume record keeps its generation across renewals and a reopened KV", async () => {
  const dir = await Deno.makeTempDir();
  try {
    let generation: string;
    {
      const h = await harness({ path: `${dir}/t.kv` });
      const first = await h.register("db0", 64 * R);
      assert.match(first.generation!, uuidPattern);
      generation = first.generation!;
      assert.equal((await h.register("db0", 64 * R)).generation, generation);
      assert.equal((await h.info("db0")).generation, generation);
      await h.close();
    }
    const h = await harness({ path: `${dir}/t.kv` });
    try {
      assert.equal((await h.info("db0")).generation, generation);
      assert.equal((await h.register("db0", 64 * R)).generation, generation);
    } finally {
      await h.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a record made again after the KV was lost has a new generation", async () => {
  const a = await harness();
  const b = await harness();
  try {
    const one = await a.register("db0", 64 * R);
    const two = await b.register("db0", 64 * R);
    assert.notEqual(one.generation, two.generation);
    const other = await a.register("db1", 64 * R);
    assert.notEqual(other.generation, one.generation);
  } finally {
    await a.close();
    await b.close();
  }
});

Deno.test("the mark sequence rises with every committed mark and is in each answer", async () => {
  const h = await harness();
  try {
    const reg = await h.register("db0", 64 * R);
    assert.equal(reg.markSeq, 0);
    const t1 = await h.track("db0", [{ offset: 0, length: 1 }]);
    assert.equal(t1.generation, reg.generation);
    assert.equal(t1.markSeq, 1);
    const t2 = await h.track("db0", [{ offset: 0, length: 1 }]); // already dirty: still a commit
    assert.equal(t2.markSeq, 2);
    assert.equal((await h.info("db0")).markSeq, 2);
    // A clear lowers nothing: the sequence names how far the record got, not what is dirty.
    const token = (await h.logAll("db0"))[0].token;
    await h.ok("POST", "/v1/volumes/db0/clear", { token });
    assert.equal((await h.info("db0")).dirtyRegions, 0);
    assert.equal((await h.info("db0")).markSeq, 2);
    assert.equal((await h.register("db0", 64 * R)).markSeq, 2);
  } finally {
    await h.close();
  }
});

Deno.test("a record stored before generations gets one when loaded, kept across restarts", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const kv = await Deno.openKv(`${dir}/t.kv`);
    await kv.set(["volume", "old0"], {
      name: "old0",
      sizeBytes: 64 * R,
      regionBytes: R,
      ownerHost: "h1",
      ownerUrl: "http://127.0.0.1:9001",
      leaseExpiresAt: 0,
      registeredAt: 0,
    });
    kv.close();
    let generation: string | undefined;
    for (let run = 0; run < 2; run++) {
      const h = await harness({ path: `${dir}/t.kv` });
      try {
        const info = await h.info("old0");
        assert.match(info.generation!, uuidPattern);
        if (generation) assert.equal(info.generation, generation);
        generation = info.generation;
      } finally {
        await h.close();
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
