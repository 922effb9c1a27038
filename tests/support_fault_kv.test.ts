/** The fault-injecting KV's one semantics: `after` commits pass, `count` fail, then all pass. */
import assert from "node:assert/strict";
import { CommitFaults, faultKv } from "./support/fault_kv.ts";

Deno.test("failNext lets `after` commits through, fails `count` without writing, then passes", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const faults = new CommitFaults();
    const faulty = faultKv(kv, faults);
    faults.failNext(2, { after: 1 });
    const outcomes: string[] = [];
    for (let i = 0; i < 5; i++) {
      try {
        await faulty.atomic().set(["k", i], i).commit();
        outcomes.push("ok");
      } catch (err) {
        assert.match((err as Error).message, /Injected commit failure/);
        outcomes.push("failed");
      }
    }
    assert.deepEqual(outcomes, ["ok", "failed", "failed", "ok", "ok"]);
    const kept = [];
    for await (const e of kv.list<number>({ prefix: ["k"] })) kept.push(e.value);
    assert.deepEqual(kept, [0, 3, 4]);
  } finally {
    kv.close();
  }
});
