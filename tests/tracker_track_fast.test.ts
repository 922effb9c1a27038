/**
 * The lean front door of `POST /v1/track` (tracker/routes/track_fast.ts): which requests it takes,
 * and that every answer it gives is the one the routed handler gives to the same request.
 */
import assert from "node:assert/strict";
import { trackFast } from "../tracker/routes/track_fast.ts";
import { regionBytesTest as R, trackerHarness } from "./support/tracker_harness.ts";

const url = "http://tracker.test/v1/track";
const mark = { volume: "db0", host: "h1", extents: [{ offset: 0, length: 1 }] };

/** A request as a server hands it over: with its Content-Length (app.request sets none). */
function post(body: string, headers: Record<string, string> = {}, at = url): Request {
  const length = String(new TextEncoder().encode(body).length);
  return new Request(at, {
    method: "POST",
    body,
    headers: { "content-type": "application/json", "content-length": length, ...headers },
  });
}

async function answer(res: Response): Promise<{ status: number; body: string; type: string }> {
  return { status: res.status, body: await res.text(), type: res.headers.get("content-type")! };
}

Deno.test("the track front door takes only a plain, well-formed POST and declines the rest", async (t) => {
  const h = await trackerHarness();
  try {
    await h.register("db0", 64 * R);
    const routed = () => {
      throw new Error("The front door handed a request it takes to the router");
    };
    const fast = trackFast({ store: h.store, metrics: h.metrics, clock: h.clock }, {
      token: "s3cret",
      bodyBytesMax: 1024,
      routed,
    });
    const body = JSON.stringify(mark);
    const auth = { authorization: "Bearer s3cret" };
    const declined: [string, Request][] = [
      ["GET", new Request(url, { method: "GET" })],
      ["another path", post(body, auth, "http://tracker.test/v1/activity")],
      ["a query", post(body, auth, `${url}?x=1`)],
      ["text/plain", post(body, { ...auth, "content-type": "text/plain" })],
      ["no Content-Length", new Request(url, { method: "POST", body, headers: auth })],
      ["an empty body", post("", auth)],
      ["a body over the bound", post(JSON.stringify({ ...mark, pad: "x".repeat(1024) }), auth)],
      ["no bearer", post(body)],
      ["a wrong bearer", post(body, { authorization: "Bearer nope" })],
    ];
    for (const [what, req] of declined) {
      await t.step(`declines ${what}`, () => assert.equal(fast(req), undefined));
    }
    await t.step("takes a well-formed command and answers after its commit", async () => {
      const res = fast(post(body, auth));
      assert.ok(res, "taken");
      const got = await answer(await res);
      assert.equal(got.status, 200);
      assert.equal(JSON.parse(got.body).regionsNew, 1);
      assert.equal((await h.info("db0")).dirtyRegions, 1);
    });
  } finally {
    await h.close();
  }
});

Deno.test("the track front door answers every request as the routed handler does", async (t) => {
  const h = await trackerHarness({ token: "s3cret" });
  try {
    const auth = { authorization: "Bearer s3cret" };
    const reg = await h.app.request("/v1/volumes/db0", {
      method: "PUT",
      headers: { ...auth, "content-type": "application/json" },
      body: JSON.stringify({
        sizeBytes: 64 * R,
        regionBytes: R,
        ownerHost: "h1",
        ownerUrl: "http://127.0.0.1:9001",
        ownerInstance: "i1",
      }),
    });
    assert.equal(reg.status, 200);
    const cases: [string, string, Record<string, string>][] = [
      ["a mark of marked regions", JSON.stringify(mark), auth],
      ["an unknown volume (404)", JSON.stringify({ ...mark, volume: "nope" }), auth],
      ["malformed JSON (400)", '{"volume": "db0", "extents": [', auth],
      [
        "a negative offset (400)",
        JSON.stringify({ ...mark, extents: [{ offset: -5, length: 1 }] }),
        auth,
      ],
      [
        "an extent past the end (400)",
        JSON.stringify({ ...mark, extents: [{ offset: 64 * R, length: 1 }] }),
        auth,
      ],
      ["another instance's claim (409)", JSON.stringify({ ...mark, instance: "i2" }), auth],
      ["a wrong bearer (401)", JSON.stringify(mark), { authorization: "Bearer nope" }],
    ];
    // The first mark dirties the region, so both doors then answer the same "already marked".
    assert.equal((await h.app.request(post(JSON.stringify(mark), auth))).status, 200);
    for (const [what, body, headers] of cases) {
      await t.step(what, async () => {
        const front = await answer(await h.app.request(post(body, headers)));
        // A query makes the front door decline, and Hono's route ignores it.
        const router = await answer(await h.app.request(post(body, headers, `${url}?door=router`)));
        const seqless = (a: typeof front) => ({ ...a, body: a.body.replace(/"markSeq":\d+/, "") });
        assert.deepEqual(seqless(front), seqless(router));
      });
    }
  } finally {
    await h.close();
  }
});
