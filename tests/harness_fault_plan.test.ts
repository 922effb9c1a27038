/** The fault simulation's schedule: drawn from the seed alone, within its bounds. */
import assert from "node:assert/strict";
import {
  faultKinds,
  parseFaultKinds,
  planBoundsDefault,
  planRound,
} from "../harness/fault_plan.ts";
import { seededRandom } from "../src/random.ts";

Deno.test("a round's fault schedule is the same for the same seed and differs for another", () => {
  const a = planRound(seededRandom(42), faultKinds);
  assert.deepEqual(planRound(seededRandom(42), faultKinds), a);
  const others = [43, 44, 45].map((s) => JSON.stringify(planRound(seededRandom(s), faultKinds)));
  assert.ok(others.some((o) => o !== JSON.stringify(a)));
});

Deno.test("fault schedules stay within their bounds and use only enabled kinds", () => {
  const enabled = ["kill-backup", "link-delay"] as const;
  const b = planBoundsDefault;
  for (let s = 0; s < 200; s++) {
    const plan = planRound(seededRandom(s), enabled);
    assert.ok(plan.length >= 1 && plan.length <= b.faultsPerRoundMax);
    for (const f of plan) {
      assert.ok((enabled as readonly string[]).includes(f.kind));
      assert.ok(f.atMs >= 0 && f.atMs < b.startMsMax);
      assert.ok(f.forMs >= b.forMsMin && f.forMs < b.forMsMax);
      assert.equal(f.delayMs !== undefined, f.kind === "link-delay");
    }
    assert.deepEqual(plan, [...plan].sort((x, y) => x.atMs - y.atMs));
  }
});

Deno.test("TRACKMIRROR_FAULTS names kinds or all, and an unknown kind is named in the error", () => {
  assert.deepEqual(parseFaultKinds("kill-host, link-cut"), ["kill-host", "link-cut"]);
  assert.deepEqual(parseFaultKinds("all"), [...faultKinds]);
  assert.throws(() => parseFaultKinds("kill-host,kill-moon"), /unknown fault kind "kill-moon"/);
});
