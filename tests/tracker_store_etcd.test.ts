/**
 * The etcd store against one real etcd member (Debian etcd-server 3.4): what it reads back, how a
 * txn's compares fail it whole, how listings page and stay inside their prefix, that the client
 * fails over between endpoints; and two trackers in one process sharing it, so every acknowledged
 * mark is in either tracker's log (and either one's dirty map) and a clear never removes a mark
 * its token did not cover.
 */
import assert from "node:assert/strict";
import { type EtcdCluster, haveEtcd, startEtcdCluster } from "../harness/etcd_cluster.ts";
import { freePort } from "../harness/service_process.ts";
import { ManualClock } from "../src/clock.ts";
import { etcdTxnOpsMax } from "../src/limits.ts";
import { createTrackerApp, type TrackerService } from "../tracker/service.ts";
import { decodeKey, encodeKey } from "../tracker/store/etcd_codec.ts";
import { EtcdClient } from "../tracker/store/etcd_client.ts";
import { etcdListPageMax, EtcdStore, etcdTraits } from "../tracker/store/etcd_store.ts";
import type { StoreAtomic, TrackerStore } from "../tracker/store/tracker_store.ts";

// etcd is a dependency of the suite (.ci/run installs etcd-server): without it these fail,
// unless TRACKMIRROR_NO_ETCD=1 says to leave them out.
const ignore = Deno.env.get("TRACKMIRROR_NO_ETCD") === "1";

Deno.test({
  name: "etcd is installed (the etcd tests need it: apt-get install etcd-server)",
  ignore,
  fn: () => assert.ok(haveEtcd(), "etcd is not installed (apt-get install etcd-server)"),
});

/** Runs `fn` with a one-member cluster in a temp dir, stopped and removed after. */
async function withEtcd(fn: (c: EtcdCluster) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "trackmirror-etcd-" });
  const cluster = await startEtcdCluster(dir, 1);
  try {
    await fn(cluster);
  } finally {
    await cluster.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

/** Byte-wise order, as etcd sorts keys. */
function compareBytes(x: Uint8Array, y: Uint8Array): number {
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
}

const storeOn = (c: EtcdCluster, ns = "t/") => new EtcdStore(new EtcdClient(c.endpoints), ns);

Deno.test("etcd keys keep Deno KV's order and prefixes", () => {
  const keys: Deno.KvKey[] = [["dirty", "a", 2], ["dirty", "a", 10], ["dirty", "a.b", 0], [
    "dirty",
    "ab",
    1,
  ]];
  const enc = keys.map((k) => encodeKey("ns/", k));
  const sorted = [...enc].sort(compareBytes);
  assert.deepEqual(sorted.map((b) => decodeKey("ns/", b)), keys);
  const prefix = encodeKey("ns/", ["dirty", "a"]);
  const under = enc.filter((b) => prefix.every((v, i) => b[i] === v));
  assert.equal(under.length, 2, "the prefix [dirty, a] covers a's segments only, not a.b or ab");
  assert.throws(() => encodeKey("ns/", ["a\0b"]), /NUL/);
  assert.throws(() => encodeKey("ns/", [-1]), /non-negative/);
});

Deno.test({
  name: "etcd store reads back what an atomic wrote, bytes and JSON, in one snapshot",
  ignore,
  fn: () =>
    withEtcd(async (c) => {
      const kv = storeOn(c);
      const bits = new Uint8Array([1, 2, 3, 255]);
      const r = await kv.atomic().set(["dirty", "v", 3], bits).set(["seq", "v"], 7).set(
        ["volume", "v"],
        { name: "v", sizeBytes: 10 },
      ).commit();
      assert.ok(r.ok);
      const [d, s, v, missing] = await kv.getMany<[Uint8Array, number, unknown, unknown]>([
        ["dirty", "v", 3],
        ["seq", "v"],
        ["volume", "v"],
        ["dirty", "v", 4],
      ]);
      assert.deepEqual(d.value, bits);
      assert.equal(s.value, 7);
      assert.deepEqual(v.value, { name: "v", sizeBytes: 10 });
      assert.equal(missing.value, null);
      assert.equal(missing.versionstamp, null);
      // A commit's versionstamp is the mod revision of every key it wrote.
      assert.equal(d.versionstamp, r.versionstamp);
      assert.equal((await kv.get(["seq", "v"])).versionstamp, r.versionstamp);
      // Another namespace on the same cluster sees none of it.
      assert.equal((await storeOn(c, "other/").get(["seq", "v"])).value, null);
    }),
});

Deno.test({
  name: "a txn whose compare is stale fails whole: none of its writes land",
  ignore,
  fn: () =>
    withEtcd(async (c) => {
      const kv = storeOn(c);
      const first = await kv.set(["seq", "v"], 1);
      await kv.set(["seq", "v"], 2); // another writer moved it
      const stale = await kv.atomic()
        .check({ key: ["seq", "v"], versionstamp: first.versionstamp })
        .set(["seq", "v"], 3)
        .set(["dirty", "v", 0], new Uint8Array([1]))
        .commit();
      assert.equal(stale.ok, false);
      assert.equal((await kv.get(["seq", "v"])).value, 2);
      assert.equal((await kv.get(["dirty", "v", 0])).value, null);
      // A check for absence (null) holds while the key is absent, and fails once it exists.
      const absent = { key: ["dirty", "v", 1], versionstamp: null } as const;
      assert.ok((await kv.atomic().check(absent).set(["dirty", "v", 1], 5).commit()).ok);
      assert.equal((await kv.atomic().check(absent).set(["dirty", "v", 1], 6).commit()).ok, false);
      assert.equal((await kv.get(["dirty", "v", 1])).value, 5);
      // A delete lands like a set, and the key is absent after.
      assert.ok((await kv.atomic().delete(["dirty", "v", 1]).commit()).ok);
      assert.equal((await kv.get(["dirty", "v", 1])).versionstamp, null);
      // A prefix's stamp moves with every put and delete under it, and only then.
      const stamp = () => kv.prefixStamp(["dirty", "v"]);
      const s0 = await stamp();
      assert.equal(await stamp(), s0);
      await kv.set(["dirty", "w", 0], 1); // another prefix
      assert.equal(await stamp(), s0);
      await kv.set(["dirty", "v", 7], 1);
      const s1 = await stamp();
      assert.notEqual(s1, s0);
      await kv.atomic().delete(["dirty", "v", 7]).commit();
      assert.notEqual(await stamp(), s1);
      assert.equal(await stamp(), s0, "back to the same keys at the same revisions");
      // More operations than etcd takes in one txn are refused before anything is sent.
      const big = kv.atomic();
      for (let i = 0; i <= etcdTxnOpsMax; i++) big.set(["x", i], i);
      await assert.rejects(big.commit(), /etcdTxnOpsMax/);
    }),
});

Deno.test({
  name: "a listing pages through a prefix in numeric order, from a start, up to a limit",
  ignore,
  fn: () =>
    withEtcd(async (c) => {
      const kv = storeOn(c);
      const n = etcdListPageMax + 44;
      for (let i = 0; i < n; i += 100) {
        const op = kv.atomic();
        for (let s = i; s < Math.min(n, i + 100); s++) op.set(["dirty", "v", s * 3], s);
        assert.ok((await op.commit()).ok);
      }
      await kv.set(["dirty", "v2", 0], -1); // a neighbour the prefix must not reach
      await kv.set(["dirtz"], -1);
      const all = [];
      for await (const e of kv.list<number>({ prefix: ["dirty", "v"] })) all.push(e.value);
      assert.deepEqual(all, Array.from({ length: n }, (_, i) => i));
      const from = [];
      for await (
        const e of kv.list<number>({ prefix: ["dirty", "v"], start: ["dirty", "v", 3 * 250] }, {
          limit: 20,
        })
      ) from.push(e.key[2]);
      assert.deepEqual(from, Array.from({ length: 20 }, (_, i) => 3 * (250 + i)));
    }),
});

Deno.test({
  name: "the client fails over past an endpoint that does not answer, and says when none does",
  ignore,
  fn: () =>
    withEtcd(async (c) => {
      const dead = `127.0.0.1:${freePort()}`;
      const client = new EtcdClient([dead, ...c.endpoints]);
      const kv = new EtcdStore(client, "t/");
      await kv.set(["seq", "v"], 9);
      assert.equal((await kv.get(["seq", "v"])).value, 9);
      assert.equal(client.failovers, 1, "moved to the live member once, and stayed there");
      const none = new EtcdStore(new EtcdClient([dead]), "t/");
      await assert.rejects(none.get(["seq", "v"]), (err: Error & { status?: number }) => {
        assert.equal(err.status, 503);
        assert.match(err.message, new RegExp(dead));
        return true;
      });
    }),
});

/** A tracker app in this process over the cluster. */
function tracker(c: EtcdCluster, clock: ManualClock): TrackerService {
  return createTrackerApp({ kv: storeOn(c, "two/"), traits: etcdTraits, clock });
}

async function call(t: TrackerService, method: string, path: string, body?: unknown) {
  const res = await t.app.request(path, {
    method,
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  // deno-lint-ignore no-explicit-any
  return { status: res.status, json: await res.json() as any };
}

Deno.test({
  name:
    "two trackers on one etcd: every acknowledged mark is in both logs; a clear keeps later marks",
  ignore,
  fn: () =>
    withEtcd(async (c) => {
      const clock = new ManualClock();
      const a = tracker(c, clock);
      const b = tracker(c, clock);
      const R = 65536;
      const reg = await call(a, "PUT", "/v1/volumes/v1", {
        sizeBytes: 4096 * R,
        regionBytes: R,
        ownerHost: "h1",
        ownerUrl: "http://127.0.0.1:9",
      });
      assert.equal(reg.status, 200);
      // B never saw the registration but serves the volume, with the same generation.
      const seen = await call(b, "GET", "/v1/volumes/v1");
      assert.equal(seen.json.generation, reg.json.generation);
      // Concurrent marks through both trackers, on shared segments: they race and retry.
      const regions = Array.from({ length: 120 }, (_, i) => (i * 37) % 4096);
      const acks = await Promise.all(regions.map((r, i) =>
        call(i % 2 ? a : b, "POST", "/v1/track", {
          volume: "v1",
          host: "h1",
          extents: [{ offset: r * R, length: 1 }],
        })
      ));
      assert.deepEqual(acks.map((x) => x.status), acks.map(() => 200));
      const logA = await call(a, "GET", "/v1/volumes/v1/log?limit=10000");
      const logB = await call(b, "GET", "/v1/volumes/v1/log?limit=10000");
      const dirty = (log: typeof logA) =>
        log.json.extents.flatMap((e: { offset: number; length: number }) =>
          Array.from({ length: e.length / R }, (_, i) => e.offset / R + i)
        );
      const want = [...new Set(regions)].sort((x, y) => x - y);
      assert.deepEqual(dirty(logA), want);
      assert.deepEqual(dirty(logB), want);
      // The dashboard's map (one cell a region) on either tracker: the dirty regions in etcd.
      const mapped = async (t: TrackerService) =>
        [...(await call(t, "GET", "/v1/volumes/v1/map?cells=4096")).json.map as string]
          .flatMap((cell, i) => cell === "D" ? [i] : []);
      assert.deepEqual(await mapped(a), want);
      assert.deepEqual(await mapped(b), want);
      // Every mark moved the sequence once, whichever tracker committed it.
      const info = await call(b, "GET", "/v1/volumes/v1");
      assert.equal(info.json.dirtyRegions, want.length);
      // A mark through B after A's log was read stays dirty when A clears with that token.
      const late = await call(b, "POST", "/v1/track", {
        volume: "v1",
        host: "h1",
        extents: [{ offset: regions[0] * R, length: 1 }],
      });
      assert.equal(late.status, 200);
      const cleared = await call(a, "POST", "/v1/volumes/v1/clear", { token: logA.json.token });
      assert.equal(cleared.json.regionsKept, 1);
      assert.equal(cleared.json.regionsCleared, want.length - 1);
      assert.deepEqual(dirty(await call(b, "GET", "/v1/volumes/v1/log")), [regions[0]]);
      // B's map after A's clear: what etcd holds now, not a summary from before.
      assert.deepEqual(await mapped(b), [regions[0]]);
      // B's summary from before A's clear is not reused: B answers what etcd holds now.
      assert.equal((await call(b, "GET", "/v1/volumes/v1")).json.dirtyRegions, 1);
      assert.equal((await call(a, "GET", "/v1/volumes/v1")).json.dirtyRegions, 1);
      // A takeover through B fences the old owner's marks at A.
      const take = await call(b, "PUT", "/v1/volumes/v1", {
        sizeBytes: 4096 * R,
        regionBytes: R,
        ownerHost: "h2",
        ownerUrl: "http://127.0.0.1:10",
        takeover: true,
      });
      assert.equal(take.json.leaseEpoch, 2);
      const fenced = await call(a, "POST", "/v1/track", {
        volume: "v1",
        host: "h1",
        extents: [{ offset: 0, length: 1 }],
        leaseEpoch: 1,
      });
      assert.equal(fenced.status, 409);
      assert.ok(a.store.stats.conflicts + b.store.stats.conflicts > 0, "the trackers did race");
      await a.close();
      await b.close();
    }),
});

Deno.test({
  name:
    "on etcd a batch cut between txns leaves the sequence unmoved; the old token keeps its marks",
  ignore,
  fn: () =>
    withEtcd(async (c) => {
      const R = 65536;
      const inner = storeOn(c, "cut/");
      let commits = 0;
      let cutAt = Infinity; // the commit (1-based) that fails as if the tracker died there
      const kv: TrackerStore = {
        get: (k) => inner.get(k),
        getMany: (keys) => inner.getMany(keys),
        list: (sel, opts) => inner.list(sel, opts),
        set: (k, v) => inner.set(k, v),
        atomic() {
          const op = inner.atomic();
          const wrapped: StoreAtomic = {
            check: (...cs) => (op.check(...cs), wrapped),
            set: (k, v) => (op.set(k, v), wrapped),
            delete: (k) => (op.delete(k), wrapped),
            commit: () => ++commits === cutAt ? Promise.reject(new Error("cut")) : op.commit(),
          };
          return wrapped;
        },
      };
      const t = createTrackerApp({ kv, traits: etcdTraits, clock: new ManualClock() });
      assert.equal(
        (await call(t, "PUT", "/v1/volumes/v1", {
          sizeBytes: 256 * 1024 * R,
          regionBytes: R,
          ownerHost: "h1",
          ownerUrl: "http://127.0.0.1:9",
        })).status,
        200,
      );
      const first = await call(t, "POST", "/v1/track", {
        volume: "v1",
        host: "h1",
        extents: [{ offset: 0, length: 1 }],
      });
      assert.equal(first.json.markSeq, 1);
      const token = (await call(t, "GET", "/v1/volumes/v1/log")).json.token;
      // One mark over 100 segments: 200 keys, so at least two txns; the second one fails.
      cutAt = commits + 2;
      const extents = Array.from({ length: 100 }, (_, i) => ({
        offset: (i + 1) * 1024 * R,
        length: 1,
      }));
      const cut = await call(t, "POST", "/v1/track", { volume: "v1", host: "h1", extents });
      assert.equal(cut.status, 500);
      const landed = [];
      for await (const e of inner.list({ prefix: ["dirty", "v1"] })) landed.push(e.key[2]);
      assert.ok(landed.length > 1 && landed.length < 101, `a first txn landed: ${landed.length}`);
      assert.equal((await inner.get(["seq", "v1"])).value, 1, "the sequence did not move");
      assert.equal((await call(t, "GET", "/v1/volumes/v1/log")).json.token, token);
      // Those marks carry sequence 2 > token: a clear with the token removes only the first mark.
      const cleared = await call(t, "POST", "/v1/volumes/v1/clear", { token });
      assert.equal(cleared.json.regionsCleared, 1);
      assert.equal(cleared.json.regionsKept, landed.length - 1);
      await t.close();
    }),
});

Deno.test({
  name: "two trackers registering one new volume at once agree on one record and generation",
  ignore,
  fn: () =>
    withEtcd(async (c) => {
      const clock = new ManualClock();
      const a = tracker(c, clock);
      const b = tracker(c, clock);
      const body = {
        sizeBytes: 1 << 30,
        regionBytes: 65536,
        ownerHost: "h1",
        ownerUrl: "http://127.0.0.1:9",
        ownerInstance: "11111111-1111-4111-8111-111111111111",
      };
      for (let round = 0; round < 5; round++) {
        const name = `new${round}`;
        const answers = await Promise.all([
          call(a, "PUT", `/v1/volumes/${name}`, body),
          call(b, "PUT", `/v1/volumes/${name}`, body),
        ]);
        assert.deepEqual(answers.map((x) => x.status), [200, 200]);
        const stored = (await call(a, "GET", `/v1/volumes/${name}`)).json.generation;
        assert.equal(answers[0].json.generation, stored, `round ${round}`);
        assert.equal(answers[1].json.generation, stored, `round ${round}`);
      }
      await a.close();
      await b.close();
    }),
});
