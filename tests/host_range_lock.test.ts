/** The host's range lock: overlapping operations in arrival order. */
import assert from "node:assert/strict";
import { RangeLock } from "../host/fork/range_lock.ts";
import { settled } from "./support/gate.ts";

Deno.test("range lock serves overlapping acquirers first come first served", async () => {
  const locks = new RangeLock();
  const order: string[] = [];
  const a = await locks.acquire(0, 100);
  const b = locks.acquire(50, 100).then((release) => {
    order.push("b");
    release();
  });
  const c = locks.acquire(120, 10).then((release) => {
    order.push("c");
    release();
  });
  const d = locks.acquire(0, 10).then((release) => {
    order.push("d");
    release();
  });
  const e = locks.acquire(500, 10).then((release) => {
    order.push("e");
    release();
  });
  await settled();
  assert.deepEqual(order, ["e"], "c overlaps b which waits; d overlaps a; e overlaps nothing");
  a();
  await Promise.all([b, c, d, e]);
  assert.equal(order[1], "b");
  assert.ok(order.indexOf("c") > order.indexOf("b"), "c waits for b");
  assert.equal(locks.size, 0);
});

Deno.test("range lock takes a free range at once and refuses an overlapping one without registering it", async () => {
  const locks = new RangeLock();
  const a = locks.tryAcquire(0, 100);
  assert.ok(a, "nothing overlaps: taken at once");
  assert.equal(locks.tryAcquire(50, 10), undefined, "overlaps a: refused");
  assert.equal(locks.size, 1, "the refused range was not registered");
  const b = locks.tryAcquire(100, 10);
  assert.ok(b, "adjacent, not overlapping");
  // A waiter behind a range taken at once is woken by its release.
  let got = false;
  const c = locks.acquire(90, 20).then((release) => {
    got = true;
    return release;
  });
  await settled();
  assert.equal(got, false);
  a();
  await settled();
  assert.equal(got, false, "b still overlaps");
  b();
  (await c)();
  assert.equal(locks.size, 0);
});
