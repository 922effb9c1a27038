/**
 * The kept-connection client (src/kept_http_client.ts) against real loopback servers: the same
 * request and the same answers and errors as `callJson`, one connection for many calls, a
 * connection the peer closed while idle replaced once, and the tracker client's `track` and
 * `activity` answering alike on it and on `fetch`.
 */
import assert from "node:assert/strict";
import { ManualClock } from "../src/clock.ts";
import { callJson } from "../src/http_client.ts";
import { KeptHttpClient } from "../src/kept_http_client.ts";
import { callError } from "./support/call_error.ts";
import { TrackerClient } from "../tracker/client.ts";
import { createTrackerApp } from "../tracker/service.ts";

/** What a test server saw of one request. */
interface Seen {
  method: string;
  path: string;
  contentType: string | null;
  authorization: string | null;
  body: string;
  peerPort: number;
}

/** Serves `handler` on a loopback port for the length of `fn`, recording every request. */
async function withServer(
  handler: (req: Request) => Response | Promise<Response>,
  fn: (url: string, seen: Seen[]) => Promise<void>,
): Promise<void> {
  const seen: Seen[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (req, info) => {
      const url = new URL(req.url);
      seen.push({
        method: req.method,
        path: url.pathname + url.search,
        contentType: req.headers.get("content-type"),
        authorization: req.headers.get("authorization"),
        body: await req.clone().text(),
        peerPort: (info.remoteAddr as Deno.NetAddr).port,
      });
      return await handler(req);
    },
  );
  try {
    await fn(`http://127.0.0.1:${server.addr.port}`, seen);
  } finally {
    await server.shutdown();
  }
}

Deno.test("calls go as JSON POSTs with the token, on one kept connection", async () => {
  await withServer(async (req) => Response.json({ got: await req.json() }), async (url, seen) => {
    const client = new KeptHttpClient({ token: "s3cret" });
    try {
      for (let i = 0; i < 3; i++) {
        assert.deepEqual(await client.postJson(url, "/v1/track", { i }), { got: { i } });
      }
      assert.equal(client.connectionsOpened, 1);
      assert.equal(new Set(seen.map((s) => s.peerPort)).size, 1, "one client port");
      assert.deepEqual(seen[2], {
        method: "POST",
        path: "/v1/track",
        contentType: "application/json",
        authorization: "Bearer s3cret",
        body: '{"i":2}',
        peerPort: seen[0].peerPort,
      });
    } finally {
      client.close();
    }
  });
});

Deno.test("error answers are the same ServiceCallErrors as callJson gives", async (t) => {
  const issues = [{ path: ["extents"], message: "Too small" }];
  const cases: Array<[string, () => Response]> = [
    ["400 with issues", () =>
      Response.json({ error: { status: 400, message: "Bad", issues } }, {
        status: 400,
      })],
    ["404", () => Response.json({ error: { status: 404, message: "Unknown" } }, { status: 404 })],
    ["503", () => Response.json({ error: { status: 503, message: "Full" } }, { status: 503 })],
    ["502 not JSON", () => new Response("bad gateway", { status: 502 })],
  ];
  for (const [name, answer] of cases) {
    await t.step(name, async () => {
      await withServer(answer, async (url) => {
        const client = new KeptHttpClient();
        try {
          const kept = await callError(client.postJson(url, "/v1/x", { a: 1 }));
          const fetched = await callError(
            callJson(url, "/v1/x", { method: "POST", json: { a: 1 } }),
          );
          assert.equal(kept.status, fetched.status);
          assert.equal(kept.message, fetched.message);
          assert.deepEqual(kept.issues, fetched.issues);
          assert.equal(kept.offline, fetched.offline);
        } finally {
          client.close();
        }
      });
    });
  }
});

Deno.test("a chunked answer is read whole", async () => {
  const parts = ['{"a":', '"chunked",', '"b":[1,2,3]}'];
  await withServer(() => {
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        for (const p of parts) controller.enqueue(new TextEncoder().encode(p));
        controller.close();
      },
    });
    return new Response(body, { headers: { "content-type": "application/json" } });
  }, async (url) => {
    const client = new KeptHttpClient();
    try {
      assert.deepEqual(await client.postJson(url, "/c", {}), { a: "chunked", b: [1, 2, 3] });
      assert.deepEqual(await client.postJson(url, "/c", {}), { a: "chunked", b: [1, 2, 3] });
      assert.equal(client.connectionsOpened, 1);
    } finally {
      client.close();
    }
  });
});

/**
 * A raw HTTP peer that answers each connection's first request, then closes that connection
 * (`answerFirst`) or closes every connection without answering; counts connections.
 */
async function withRawPeer(
  answerFirst: boolean,
  fn: (url: string, accepted: () => number) => Promise<void>,
): Promise<void> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let accepted = 0;
  const served = (async () => {
    for await (const conn of listener) {
      accepted++;
      const buf = new Uint8Array(4096);
      let text = "";
      while (!text.includes("\r\n\r\n") || !text.endsWith("}")) {
        const n = await conn.read(buf);
        if (n === null) break;
        text += new TextDecoder().decode(buf.subarray(0, n));
      }
      if (answerFirst) {
        const body = `{"n":${accepted}}`;
        await conn.write(new TextEncoder().encode(
          `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n` +
            `content-length: ${body.length}\r\n\r\n${body}`,
        ));
      }
      conn.close();
    }
  })();
  try {
    await fn(`http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`, () => accepted);
  } finally {
    listener.close();
    await served.catch(() => {});
  }
}

Deno.test("a kept connection the peer closed while idle is replaced, once", async () => {
  await withRawPeer(true, async (url, accepted) => {
    const client = new KeptHttpClient();
    try {
      assert.deepEqual(await client.postJson(url, "/v1/track", {}), { n: 1 });
      // The peer closed the connection after its answer: the next call finds it dead and
      // sends again on a new one.
      assert.deepEqual(await client.postJson(url, "/v1/track", {}), { n: 2 });
      assert.equal(accepted(), 2);
      assert.equal(client.connectionsOpened, 2);
    } finally {
      client.close();
    }
  });
});

Deno.test("a new connection closed without an answer is a no-answer error, not retried", async () => {
  await withRawPeer(false, async (url, accepted) => {
    const client = new KeptHttpClient();
    try {
      const err = await callError(client.postJson(url, "/v1/track", {}));
      assert.equal(err.status, 0);
      assert.ok(err.offline);
      assert.match(err.message, new RegExp(`^POST ${url}/v1/track failed: `));
      assert.equal(accepted(), 1);
    } finally {
      client.close();
    }
  });
});

Deno.test("a refused connection is an offline error with status 0", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const url = `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`;
  listener.close();
  const client = new KeptHttpClient();
  const err = await callError(client.postJson(url, "/v1/track", {}));
  assert.equal(err.status, 0);
  assert.match(err.message, new RegExp(`^POST ${url}/v1/track failed: .*refused`, "i"));
});

Deno.test("a peer that does not answer in time is an offline error with status 0", async () => {
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  await withServer(async () => {
    await held;
    return Response.json({ late: true });
  }, async (url) => {
    const client = new KeptHttpClient({ timeoutMs: 100 });
    try {
      const err = await callError(client.postJson(url, "/slow", {}));
      assert.equal(err.status, 0);
      assert.equal(err.message, `POST ${url}/slow failed: no answer within 100 ms`);
    } finally {
      release();
      client.close();
    }
  });
});

Deno.test("the tracker client answers track and activity alike on kept connections", async () => {
  const kv = await Deno.openKv(":memory:");
  const tracker = createTrackerApp({ kv, clock: new ManualClock(1000) });
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    tracker.app.fetch,
  );
  const url = `http://127.0.0.1:${server.addr.port}`;
  const kept = new TrackerClient(url, { keptConnections: true });
  const fetched = new TrackerClient(url);
  try {
    await fetched.registerVolume("vol0", {
      sizeBytes: 1 << 24,
      ownerHost: "h1",
      ownerUrl: "http://127.0.0.1:1",
    });
    const track = { volume: "vol0", host: "h1", extents: [{ offset: 0, length: 4096 }] };
    const a = await kept.track({ ...track, time: 5 });
    const b = await fetched.track({ ...track, time: 6 });
    assert.equal(a.regionsNew, 1);
    assert.equal(b.regionsNew, 0);
    assert.equal(b.markSeq, a.markSeq! + 1);
    assert.deepEqual({ ...a, markSeq: 0 }, { ...b, regionsNew: 1, markSeq: 0 });
    const act = { volume: "vol0", host: "h2", extents: [{ offset: 65536, length: 1 }] };
    assert.deepEqual(await kept.activity(act), { ...(await fetched.activity(act)), regionsNew: 1 });
    for (const bad of [{ ...track, volume: "nope" }, { ...track, extents: [] }]) {
      const e1 = await callError(kept.track(bad));
      const e2 = await callError(fetched.track(bad));
      assert.equal(e1.status, e2.status);
      assert.equal(e1.message, e2.message);
      assert.deepEqual(e1.issues, e2.issues);
    }
  } finally {
    kept.close();
    await server.shutdown();
    await tracker.close();
    kv.close();
  }
});
