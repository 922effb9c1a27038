/**
 * The lean front door of `PUT /v1/volumes/{name}/data` (host/data_write_fast.ts): which requests
 * it takes and which it leaves to the routes, that what it writes reads back, and that a write
 * that fails answers the same as through the routes.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { HostAgent } from "../host/agent/host_agent.ts";
import { createHostApp, httpIoBytesMax } from "../host/app.ts";
import { dataWriteFast } from "../host/data_write_fast.ts";
import { ManualClock } from "../src/clock.ts";
import type { TrackRequest } from "../src/schemas.ts";
import { FakeBackup, FakeTracker } from "./support/fake_ports.ts";
import { fuzz } from "./support/fuzz.ts";
import { StepTimers } from "./support/step_timers.ts";

const region = 64 * 1024;
const sizeBytes = 16 * region;
const token = "s3cret";

/** A tracker that refuses every mark, as an unreachable one would. */
class RefusingTracker extends FakeTracker {
  refuseMarks = false;
  override track(req: TrackRequest): Promise<unknown> {
    if (this.refuseMarks) {
      return Promise.reject(Object.assign(new Error("Tracker unreachable"), { status: 503 }));
    }
    return super.track(req);
  }
}

async function withAgent(
  fn: (agent: HostAgent, tracker: RefusingTracker, backup: FakeBackup) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir();
  const backup = new FakeBackup();
  const tracker = new RefusingTracker();
  const agent = await HostAgent.open({
    hostId: "host0",
    advertiseUrl: "http://127.0.0.1:1",
    volumes: [{ name: "vol0", path: `${dir}/vol0.img`, sizeBytes }],
    regionBytes: region,
    tracker,
    backup,
    clock: new ManualClock(),
    probe: { timers: new StepTimers() },
    linkFactory: backup.linkFactory,
  });
  try {
    await fn(agent, tracker, backup);
  } finally {
    await agent.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** A PUT of `bytes` bytes at `path`, with the Content-Length a real client sends. */
function put(path: string, bytes: number, headers: Record<string, string> = {}): Request {
  return new Request(`http://127.0.0.1:8703${path}`, {
    method: "PUT",
    body: new Uint8Array(bytes).fill(7),
    headers: { "content-length": String(bytes), ...headers },
  });
}

Deno.test("the lean path takes only the plain PUT it can answer 204 and leaves the rest", async () => {
  await withAgent(async (agent) => {
    const fast = dataWriteFast(agent, { token, service: "host" });
    const auth = { authorization: `Bearer ${token}` };
    const cases: { name: string; req: Request; taken: boolean }[] = [
      {
        name: "a plain write",
        req: put("/v1/volumes/vol0/data?offset=4096", 4096, auth),
        taken: true,
      },
      {
        name: "the last bytes",
        req: put(`/v1/volumes/vol0/data?offset=${sizeBytes - 1}`, 1, auth),
        taken: true,
      },
      {
        name: "a read",
        req: new Request("http://h/v1/volumes/vol0/data?offset=0&length=1", { headers: auth }),
        taken: false,
      },
      {
        name: "a negative offset",
        req: put("/v1/volumes/vol0/data?offset=-1", 1, auth),
        taken: false,
      },
      {
        name: "a 17-digit offset",
        req: put(`/v1/volumes/vol0/data?offset=${"1".repeat(17)}`, 1, auth),
        taken: false,
      },
      {
        name: "an unsafe offset",
        req: put(`/v1/volumes/vol0/data?offset=${"9".repeat(16)}`, 1, auth),
        taken: false,
      },
      { name: "an empty offset", req: put("/v1/volumes/vol0/data?offset=", 1, auth), taken: false },
      {
        name: "another query field",
        req: put("/v1/volumes/vol0/data?offset=0&x=1", 1, auth),
        taken: false,
      },
      {
        name: "an unknown volume",
        req: put("/v1/volumes/nope/data?offset=0", 1, auth),
        taken: false,
      },
      {
        name: "an escaped name",
        req: put("/v1/volumes/vol%30/data?offset=0", 1, auth),
        taken: false,
      },
      {
        name: "a trailing slash",
        req: put("/v1/volumes/vol0/data/?offset=0", 1, auth),
        taken: false,
      },
      {
        name: "another route",
        req: put("/v1/volumes/vol0/resync?offset=0", 1, auth),
        taken: false,
      },
      { name: "an empty body", req: put("/v1/volumes/vol0/data?offset=0", 0, auth), taken: false },
      {
        name: "a body over the bound",
        req: put("/v1/volumes/vol0/data?offset=0", httpIoBytesMax + 1, auth),
        taken: false,
      },
      {
        name: "a range past the end",
        req: put(`/v1/volumes/vol0/data?offset=${sizeBytes - 1}`, 2, auth),
        taken: false,
      },
      {
        name: "no Content-Length",
        req: new Request("http://h/v1/volumes/vol0/data?offset=0", {
          method: "PUT",
          body: new Uint8Array(1),
          headers: auth,
        }),
        taken: false,
      },
      {
        name: "a chunked body",
        req: put("/v1/volumes/vol0/data?offset=0", 1, { ...auth, "transfer-encoding": "chunked" }),
        taken: false,
      },
      { name: "no token", req: put("/v1/volumes/vol0/data?offset=0", 1), taken: false },
      {
        name: "a wrong token",
        req: put("/v1/volumes/vol0/data?offset=0", 1, { authorization: "Bearer nope" }),
        taken: false,
      },
    ];
    for (const c of cases) {
      const res = fast(c.req);
      assert.equal(res !== undefined, c.taken, c.name);
      if (res) assert.equal((await res).status, 204, c.name);
    }
  });
});

Deno.test("bytes written through the lean path read back through the routes", async () => {
  await withAgent(async (agent) => {
    const app = createHostApp(agent);
    const data = new Uint8Array(3000).map((_, i) => (i * 7) % 251);
    const req = new Request("http://h/v1/volumes/vol0/data?offset=70000", {
      method: "PUT",
      body: data,
      headers: { "content-length": String(data.length) },
    });
    assert.notEqual(dataWriteFast(agent, { service: "host" })(req.clone()), undefined);
    const written = await app.request(req);
    assert.equal(written.status, 204);
    const get = await app.request("/v1/volumes/vol0/data?offset=70000&length=3000");
    assert.equal(get.status, 200);
    assert.deepEqual(new Uint8Array(await get.arrayBuffer()), data);
  });
});

Deno.test("a write neither backup nor tracker takes answers the same on both paths", async () => {
  await withAgent(async (agent, tracker, backup) => {
    const app = createHostApp(agent);
    // The link breaks and the backup stops answering: every write needs the tracker, which
    // refuses.
    backup.healthy = false;
    for (const link of backup.links) link.fail();
    tracker.refuseMarks = true;
    const path = "/v1/volumes/vol0/data?offset=0";
    const lean = put(path, 512);
    assert.notEqual(dataWriteFast(agent, { service: "host" })(lean.clone()), undefined);
    const viaLean = await app.request(lean);
    const viaRoutes = await app.request(path, { method: "PUT", body: new Uint8Array(512) });
    assert.equal(viaLean.status, viaRoutes.status);
    assert.ok(viaLean.status >= 500, `status ${viaLean.status}`);
    assert.equal(viaLean.headers.get("content-type"), viaRoutes.headers.get("content-type"));
    assert.deepEqual(await viaLean.json(), await viaRoutes.json());
  });
});

Deno.test("fuzz: any PUT answers the same with Content-Length (lean path) as without (routes)", async () => {
  await withAgent(async (agent) => {
    const app = createHostApp(agent);
    const fast = dataWriteFast(agent, { service: "host" });
    let taken = 0;
    const offsets = fc.oneof(
      fc.nat(sizeBytes + region).map(String),
      fc.constantFrom("", "-1", "01", "1e3", "0x10", " 1", "9".repeat(16), "1".repeat(17)),
    );
    const request = fc.record({
      name: fc.constantFrom("vol0", "vol0", "nope", "Vol!", "vol%30", ".."),
      offset: offsets,
      more: fc.constantFrom("", "", "&x=1", "&offset=5", "&length=1"),
      bytes: fc.oneof(fc.nat(2 * region), fc.constantFrom(0, 1, 4096)),
    });
    await fuzz(
      "lean PUT vs routes",
      fc.asyncProperty(request, async ({ name, offset, more, bytes }) => {
        const path = `/v1/volumes/${name}/data?offset=${offset}${more}`;
        const body = new Uint8Array(bytes).fill(bytes & 0xff);
        const withLength = () =>
          new Request(`http://h${path}`, {
            method: "PUT",
            body,
            headers: { "content-length": String(bytes) },
          });
        if (fast(withLength()) !== undefined) taken++;
        const lean = await app.request(withLength());
        const routes = await app.request(path, { method: "PUT", body });
        assert.equal(lean.status, routes.status, path);
        assert.equal(await lean.text(), await routes.text(), path);
      }),
      200,
    );
    // The property says nothing unless the lean path took some of the requests.
    assert.ok(taken > 0, "the lean path took none of the generated requests");
  });
});
