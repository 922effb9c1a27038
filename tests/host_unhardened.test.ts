/**
 * Seed 002's current/old unhardened regions: after any sequence of sends, receipt acks and
 * hardening notices, their union holds every region received and not yet hardened.
 */
import assert from "node:assert/strict";
import { UnhardenedRegions } from "../host/link/unhardened.ts";
import { seededRandom } from "../src/random.ts";

const regionBytes = 4096;

Deno.test("the union of current and old covers every received, unhardened region", () => {
  for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
    const rand = seededRandom(seed);
    const u = new UnhardenedRegions(regionBytes);
    /** The precise model: frame sequence → region, and how far receipt and hardening got. */
    const sent: number[] = [];
    let received = 0;
    let hardened = 0;
    let emptied = 0;
    for (let step = 0; step < 2000; step++) {
      const r = rand();
      if (r < 0.4) {
        sent.push(Math.floor(rand() * 64));
      } else if (r < 0.7 && received < sent.length) {
        const upTo = received + 1 + Math.floor(rand() * (sent.length - received));
        for (let s = received + 1; s <= upTo; s++) {
          u.received(sent[s - 1] * regionBytes, 512);
        }
        received = upTo;
      } else if (hardened < received) {
        hardened += 1 + Math.floor(rand() * (received - hardened));
        u.notice(hardened, sent.length);
      }
      const union = new Set(u.unionRegions());
      for (let s = hardened + 1; s <= received; s++) {
        assert.ok(union.has(sent[s - 1]), `seed ${seed} step ${step}: region of seq ${s} lost`);
      }
      if (union.size === 0) emptied++;
    }
    // Not trivially a superset: it empties again once everything is hardened.
    assert.ok(emptied > 0, `seed ${seed}: the union never emptied`);
  }
});

Deno.test("regions leave the union once a notice covers the boundary of their toggle", () => {
  const u = new UnhardenedRegions(regionBytes);
  u.received(0, 2 * regionBytes); // seq 1
  u.notice(0, 2); // toggle: old = {0, 1}, boundary 2 (seq 2 sent, not yet received)
  u.received(5 * regionBytes, 1); // seq 2
  assert.deepEqual(u.unionRegions(), [0, 1, 5]);
  u.notice(1, 3); // does not cover boundary 2: nothing dropped
  assert.deepEqual(u.unionRegions(), [0, 1, 5]);
  u.notice(2, 3); // covers it: old dropped, {5} becomes old
  assert.deepEqual(u.unionRegions(), [5]);
  u.notice(3, 3); // everything sent is hardened
  assert.deepEqual(u.unionRegions(), []);
});
