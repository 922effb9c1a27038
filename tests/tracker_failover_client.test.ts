/**
 * The tracker client over several trackers (issue 12): a call goes to the current tracker and
 * moves to the next on no answer, a 5xx or a timeout, and stays with the one that answered; a 4xx
 * is an answer and goes nowhere else. Against small real HTTP servers on loopback (Hono apps in
 * this process), so connection refusals and timeouts are the real ones.
 */
import assert from "node:assert/strict";
import { Hono } from "hono";
import { statusView } from "../host/agent/status_view.ts";
import { ManualClock } from "../src/clock.ts";
import { FailoverTargets } from "../src/failover.ts";
import { ServiceCallError } from "../src/http_client.ts";
import type { VolumeRegistration } from "../src/schemas.ts";
import { TrackerClient } from "../tracker/client.ts";
import { createTrackerApp } from "../tracker/service.ts";

/** A Hono app served on a free loopback port, counting the requests it got. */
interface TestServer {
  url: string;
  requests: number;
  close(): Promise<void>;
}

function serve(app: Hono | { fetch: (req: Request) => Response | Promise<Response> }): TestServer {
  const server = {
    url: "",
    requests: 0,
    close: async () => {
      await http.shutdown();
    },
  };
  const http = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    server.requests++;
    return app.fetch(req);
  });
  server.url = `http://127.0.0.1:${http.addr.port}`;
  return server;
}

/** A URL nothing listens on: a port the kernel gave out and that was closed again. */
function deadUrl(): string {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return `http://127.0.0.1:${port}`;
}

/** A tracker stand-in: answers `GET /v1/volumes` and `/healthz` with `status`, naming itself. */
function fakeTracker(name: string, status: () => number): Hono {
  return new Hono()
    .get("/v1/volumes", (c) => {
      const s = status();
      if (s === 200) return c.json({ volumes: [], from: name });
      return c.json({ error: { status: s, message: `${name} answers ${s}` } }, s as 404);
    })
    .get(
      "/v1/volumes/:name",
      (c) =>
        c.json(
          { error: { status: 404, message: `Volume "${c.req.param("name")}" is unknown` } },
          404,
        ),
    )
    .get("/healthz", (c) => c.json({ ok: status() === 200 }, status() === 200 ? 200 : 503));
}

async function withServers(
  servers: TestServer[],
  fn: () => Promise<void>,
): Promise<void> {
  try {
    await fn();
  } finally {
    for (const s of servers) await s.close();
  }
}

Deno.test("a tracker that is not listening is skipped, and the one that answered stays current", async () => {
  const dead = deadUrl();
  const live = serve(fakeTracker("live", () => 200));
  await withServers([live], async () => {
    const client = new TrackerClient([dead, live.url]);
    assert.deepEqual(await client.listVolumes(), []);
    assert.equal(client.baseUrl, live.url);
    const [first, second] = client.trackers();
    assert.equal(first.state, "offline");
    assert.match(first.lastError!, /refused/i);
    assert.equal(first.current, false);
    assert.equal(second.state, "online");
    assert.equal(second.current, true);
    // Sticky: the next calls go straight to the live one, the dead one is not tried again.
    await client.listVolumes();
    await client.listVolumes();
    assert.equal(live.requests, 3);
    assert.equal(client.trackers()[0].failures, 1);
  });
});

Deno.test("a tracker answering 503 is failed over, and failing back happens only when the current one fails", async () => {
  let aStatus = 503;
  let bStatus = 200;
  const a = serve(fakeTracker("a", () => aStatus));
  const b = serve(fakeTracker("b", () => bStatus));
  await withServers([a, b], async () => {
    const client = new TrackerClient([a.url, b.url]);
    await client.listVolumes();
    assert.equal(client.baseUrl, b.url);
    assert.match(client.trackers()[0].lastError!, /answered 503: a answers 503/);
    assert.deepEqual([a.requests, b.requests], [1, 1]);

    aStatus = 200; // a is back, but b answers: calls stay with b
    await client.listVolumes();
    assert.deepEqual([a.requests, b.requests], [1, 2]);

    bStatus = 500; // b fails: the call wraps around to a
    await client.listVolumes();
    assert.equal(client.baseUrl, a.url);
    assert.deepEqual([a.requests, b.requests], [2, 3]);
  });
});

Deno.test("a 4xx is the tracker's answer: not sent to another tracker", async () => {
  const a = serve(fakeTracker("a", () => 200));
  const b = serve(fakeTracker("b", () => 200));
  await withServers([a, b], async () => {
    const client = new TrackerClient([a.url, b.url]);
    await assert.rejects(client.getVolume("vol0"), (err) => {
      assert.ok(err instanceof ServiceCallError);
      assert.equal(err.status, 404);
      return true;
    });
    assert.equal(b.requests, 0);
    assert.equal(client.baseUrl, a.url);
    assert.equal(client.trackers()[0].state, "online", "a refusal is an answer");
  });
});

Deno.test("when no tracker answers, each is tried once and the call fails as offline", async () => {
  const a = serve(fakeTracker("a", () => 503));
  const dead = deadUrl();
  await withServers([a], async () => {
    const client = new TrackerClient([a.url, dead]);
    await assert.rejects(client.listVolumes(), (err) => {
      assert.ok(err instanceof ServiceCallError);
      assert.ok(err.offline);
      assert.match(err.message, new RegExp(dead));
      return true;
    });
    assert.equal(a.requests, 1);
    assert.equal(client.baseUrl, a.url, "the current tracker stays when none answered");
    assert.deepEqual(client.trackers().map((t) => t.state), ["offline", "offline"]);
    assert.equal(await client.healthz(), false);
  });
});

Deno.test("a tracker that does not answer within the request timeout is failed over", async () => {
  let release!: () => void;
  const released = new Promise<void>((resolve) => release = resolve);
  const hung = serve({
    fetch: async () => {
      await released;
      return new Response("late", { status: 200 });
    },
  });
  const live = serve(fakeTracker("live", () => 200));
  await withServers([hung, live], async () => {
    try {
      const client = new TrackerClient([hung.url, live.url], { timeoutMs: 200 });
      assert.deepEqual(await client.listVolumes(), []);
      assert.equal(client.baseUrl, live.url);
      assert.match(client.trackers()[0].lastError!, /no answer within 200 ms/);
    } finally {
      release();
    }
  });
});

Deno.test("probeAll shows each tracker's reachability without moving the current one", async () => {
  const a = serve(fakeTracker("a", () => 200));
  const dead = deadUrl();
  const b = serve(fakeTracker("b", () => 200));
  await withServers([a, b], async () => {
    const client = new TrackerClient([a.url, dead, b.url]);
    assert.deepEqual(client.trackers().map((t) => t.state), ["probing", "probing", "probing"]);
    await client.probeAll();
    assert.deepEqual(client.trackers().map((t) => t.state), ["online", "offline", "online"]);
    assert.equal(client.baseUrl, a.url);
    assert.equal(client.trackers().filter((t) => t.current).length, 1);
  });
});

Deno.test("FailoverTargets: a thrown non-HTTP error (a bug) is not failed over", async () => {
  const targets = new FailoverTargets(["http://a", "http://b"], new ManualClock());
  const tried: string[] = [];
  await assert.rejects(
    targets.run((url) => {
      tried.push(url);
      throw new TypeError("bug");
    }),
    TypeError,
  );
  assert.deepEqual(tried, ["http://a"]);
  assert.throws(() => new FailoverTargets([]), RangeError);
});

/**
 * A tracker that commits a request and then loses its answer (answers 502, as a proxy would
 * when the tracker died right after its commit): the client sends the same call to the next one.
 */
function answerLost(app: { fetch: (req: Request) => Response | Promise<Response> }) {
  return {
    fetch: async (req: Request) => {
      const res = await app.fetch(req);
      await res.body?.cancel();
      return Response.json({ error: { status: 502, message: "answer lost" } }, { status: 502 });
    },
  };
}

Deno.test("a lease registration committed by a tracker whose answer was lost is granted again, at the same epoch, by the next", async () => {
  const kv = await Deno.openKv(":memory:");
  const clock = new ManualClock();
  const first = createTrackerApp({ kv, clock });
  const lossy = serve(answerLost(first.app));
  // The second tracker starts once the first is gone, as with Deno KV it must (it would
  // otherwise answer from what it cached before the first one's commit).
  let second: ReturnType<typeof createTrackerApp> | undefined;
  const good = serve({
    fetch: (req: Request) => (second ??= createTrackerApp({ kv, clock })).app.fetch(req),
  });
  await withServers([lossy, good], async () => {
    const reg = (instance: string, takeover = false): VolumeRegistration => ({
      sizeBytes: 1 << 20,
      regionBytes: 65536,
      ownerHost: "h0",
      ownerUrl: "http://127.0.0.1:9",
      leaseMs: 30_000,
      takeover,
      ownerInstance: instance,
      ownerPrimary: `m:/p/${instance}.img`,
    });
    // Another agent holds the volume at epoch 1.
    const res = await first.app.request("/v1/volumes/vol0", {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(reg("other")),
    });
    assert.equal((await res.json()).leaseEpoch, 1);

    // Our takeover commits at the first tracker (epoch 2), its answer is lost, and the client
    // sends it to the second: the record already names our instance, so the epoch stays 2.
    const client = new TrackerClient([lossy.url, good.url]);
    const taken = await client.registerVolume("vol0", reg("ours", true));
    assert.equal(lossy.requests, 1, "the first tracker got the registration");
    assert.equal(good.requests, 1);
    assert.equal(taken.ownerInstance, "ours");
    assert.equal(taken.leaseEpoch, 2, "a takeover retried after its commit is a renewal");
    // And the other agent, still holding epoch 1, is refused by the tracker now in use.
    await assert.rejects(client.registerVolume("vol0", reg("other")), (err) => {
      assert.ok(err instanceof ServiceCallError);
      assert.equal(err.status, 409);
      return true;
    });
  });
  await first.close();
  await second?.close();
  kv.close();
});

Deno.test("the host status names every tracker of the list and the current one", async () => {
  const dead = deadUrl();
  const live = serve(fakeTracker("live", () => 200));
  await withServers([live], async () => {
    const client = new TrackerClient([dead, live.url]);
    await client.listVolumes();
    const doc = statusView({
      hostId: "host0",
      instance: "i",
      advertiseUrl: "http://127.0.0.1:1",
      forking: true,
      backup: {
        name: "backup",
        state: "online",
        since: 0,
        lastError: null,
        lastErrorAt: null,
        probes: 0,
      },
      ack: "durable",
      unhardened: { uncoveredRegions: 0, regionsCovered: 0 },
      linkFrames: 0,
      trackerError: null,
      tracker: { state: "online", since: 0, lastError: null, lastErrorAt: null, failures: 0 },
      trackerUrl: client.baseUrl,
      trackers: client.trackers(),
      volumes: [],
      isRegistered: () => true,
    });
    const t = doc.components.tracker;
    assert.equal(t.url, live.url);
    assert.equal(t.current, live.url);
    assert.deepEqual(t.urls?.map((u) => [u.url, u.state, u.current]), [
      [dead, "offline", false],
      [live.url, "online", true],
    ]);
  });
});
