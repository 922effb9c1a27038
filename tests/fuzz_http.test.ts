/**
 * Fuzzing every HTTP route of the tracker, the backup and the host agent in process, with
 * fast-check (support/http_fuzz.ts makes the requests from each app's own route list). For every
 * request: never a 5xx; a refusal is a 4xx with exactly `{"error":{status,message,issues?}}`; and
 * a refused request changed nothing (the service's state read before equals the state after).
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { openBackup } from "../backup/service.ts";
import { HostAgent } from "../host/agent/host_agent.ts";
import { createHostApp } from "../host/app.ts";
import { ManualClock } from "../src/clock.ts";
import { dashboardFiles } from "../tracker/routes/dashboard_routes.ts";
import { encodeRecord } from "../src/journal_record.ts";
import { FakeBackup, FakeTracker } from "./support/fake_ports.ts";
import { fuzz } from "./support/fuzz.ts";
import { checkErrorShape, requestArb, routesOf, send } from "./support/http_fuzz.ts";
import { StepTimers } from "./support/step_timers.ts";
import { regionBytesTest, trackerHarness } from "./support/tracker_harness.ts";

const extents = [{ offset: 700, length: 5000 }];

Deno.test("fuzz: tracker routes answer bad input with a 4xx error and change nothing", async () => {
  const h = await trackerHarness();
  try {
    const R = regionBytesTest;
    const registration = {
      sizeBytes: 4096 * R,
      regionBytes: R,
      ownerHost: "h1",
      ownerUrl: "http://127.0.0.1:9001",
    };
    await h.register("db0", registration.sizeBytes);
    await h.track("db0", extents);
    await h.active("db0", "h1", [3, 4]);
    const { token } = (await h.logAll("db0"))[0];
    const names = ["db0", "db1"];
    const snapshot = async () => {
      const list = await h.req("GET", "/v1/volumes");
      const per = [];
      for (const n of names) {
        per.push(await h.req("GET", `/v1/volumes/${n}`));
        per.push(await h.req("GET", `/v1/volumes/${n}/log`));
        per.push(await h.req("GET", `/v1/volumes/${n}/activity`));
      }
      return { list, per, dirty: await h.dirtyKeys() };
    };
    const target = {
      routes: routesOf(h.app),
      names,
      bodies: {
        "/v1/track": { volume: "db0", host: "h1", extents, time: 5 },
        "/v1/volumes/:name": registration,
        "/v1/volumes/:name/clear": { token, extents },
        "/v1/activity": { volume: "db0", host: "h1", extents },
        "/v1/volumes/:name/activity/retire": { host: "h1", extents },
        "/v1/volumes/:name/activity/promote": { host: "h1" },
      },
      queries: {
        "/v1/volumes/:name/log": { since: "0", until: "99", limit: "2", cursor: "0:0" },
        "/v1/volumes/:name/activity": { host: "h1", limit: "2", cursor: "h1:0" },
      },
    };
    await fuzz(
      "http tracker",
      fc.asyncProperty(requestArb(target), async (r) => {
        const before = await snapshot();
        const res = await send(h.app, r);
        checkErrorShape(r, res);
        if (res.status >= 400) assert.deepEqual(await snapshot(), before, "state changed");
      }),
      1000,
    );
  } finally {
    await h.close();
  }
});

Deno.test("fuzz: backup routes answer bad input with a 4xx error and change nothing", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "fuzz_backup_" });
  const backup = await openBackup({ dataDir, log: () => {} });
  try {
    const app = backup.app;
    const sizeBytes = 1024 * 1024;
    const put = await app.request("/v1/volumes/db0", {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ sizeBytes }),
    });
    assert.equal(put.status, 201);
    const batch = new Uint8Array([
      ...encodeRecord({
        kind: "write",
        volume: "db0",
        offset: 4096,
        length: 8,
        data: new Uint8Array(8).fill(7),
      }),
      ...encodeRecord({ kind: "zero", volume: "db0", offset: 0, length: 512 }),
    ]);
    const snapshot = async () => {
      const status = await (await app.request("/v1/status")).json();
      // A lag's age moves with the clock, not with requests.
      for (const lag of status.lag ?? []) delete lag.seconds;
      const volumes = await (await app.request("/v1/volumes")).json();
      return { status, volumes };
    };
    const target = {
      routes: routesOf(app),
      names: ["db0", "db1"],
      bodies: { "/v1/volumes/:name": { sizeBytes } },
      rawBodies: { "/v1/volumes/:name/writes": batch },
      headers: {
        "x-trackmirror-epoch": ["0", "1", "-1", "1e3", "9007199254740993", ""],
        "content-length": ["0", "abc", "-1", "1e3", "99999999999", "9007199254740993"],
      },
    };
    await fuzz(
      "http backup",
      fc.asyncProperty(requestArb(target), async (r) => {
        const before = await snapshot();
        const res = await send(app, r);
        checkErrorShape(r, res);
        if (res.status >= 400) assert.deepEqual(await snapshot(), before, "state changed");
      }),
      1000,
    );
  } finally {
    await backup.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("fuzz: host routes answer bad input with a 4xx error and change nothing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fuzz_host_" });
  const region = 64 * 1024;
  const sizeBytes = 16 * region;
  const backup = new FakeBackup();
  const tracker = new FakeTracker();
  const timers = new StepTimers();
  const agent = await HostAgent.open({
    hostId: "host0",
    advertiseUrl: "http://127.0.0.1:1",
    volumes: [{ name: "vol0", path: `${dir}/vol0.img`, sizeBytes }],
    regionBytes: region,
    tracker,
    backup,
    clock: new ManualClock(),
    probe: { timers },
    linkFactory: backup.linkFactory,
  });
  try {
    const app = createHostApp(agent);
    timers.fire(); // the probe finds the backup: resync is accepted, not only refused with 503
    const volume = agent.volume("vol0")!;
    const snapshot = async () => ({
      bytes: await volume.device.read(0, sizeBytes),
      batches: backup.batches.length,
      resync: await (await app.request("/v1/volumes/vol0/resync")).json(),
    });
    const target = {
      routes: routesOf(app),
      names: ["vol0", "vol1"],
      bodies: {},
      queries: { "/v1/volumes/:name/data": { offset: "4096", length: "100" } },
    };
    await fuzz(
      "http host",
      fc.asyncProperty(requestArb(target), async (r) => {
        const before = await snapshot();
        const res = await send(app, r);
        checkErrorShape(r, res);
        if (res.status >= 400) assert.deepEqual(await snapshot(), before, "state changed");
        if (res.status === 202) await resyncDone(app);
      }),
      800,
    );
  } finally {
    await agent.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("fuzz: with a token, no request without it gets past the guard or changes anything", async () => {
  const token = "s3cret-token";
  const dataDir = await Deno.makeTempDir({ prefix: "fuzz_backup_token_" });
  const backup = await openBackup({ dataDir, log: () => {}, token });
  const h = await trackerHarness({ token });
  try {
    const auth = { authorization: `Bearer ${token}` };
    const put = await backup.app.request("/v1/volumes/db0", {
      method: "PUT",
      headers: { ...auth, "content-type": "application/json" },
      body: JSON.stringify({ sizeBytes: 1 << 20 }),
    });
    assert.equal(put.status, 201);
    const snapshot = async () => ({
      backup: await (await backup.app.request("/v1/status", { headers: auth })).json(),
      tracker: await (await h.app.request("/v1/volumes", { headers: auth })).json(),
    });
    const wrongTokens = ["", "Bearer", `Bearer ${token}x`, `bearer ${token}`, token, "Basic eA=="];
    // Open without the token: /healthz, and the tracker's dashboard files (they hold no data;
    // the page asks for the token before it reads any).
    const unguarded = new Set(["/healthz", ...Object.keys(dashboardFiles)]);
    for (const [name, app] of [["backup", backup.app], ["tracker", h.app]] as const) {
      const target = {
        routes: routesOf(app),
        names: ["db0"],
        bodies: { "/v1/volumes/:name": { sizeBytes: 1 << 20 } },
        headers: { authorization: wrongTokens },
      };
      await fuzz(
        `http ${name} without the token`,
        fc.asyncProperty(requestArb(target), async (r) => {
          if (r.headers.authorization === undefined) r.headers.authorization = wrongTokens[0];
          const before = await snapshot();
          const res = await send(app, r);
          checkErrorShape(r, res);
          if (!unguarded.has(r.path.split("?")[0])) {
            assert.ok(res.status === 401 || res.status === 404);
          }
          assert.deepEqual(await snapshot(), before, "state changed");
        }),
        200,
      );
    }
  } finally {
    await h.close();
    await backup.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});

/** Waits for a resync started by a fuzzed request to end, so it cannot change a later snapshot. */
async function resyncDone(app: ReturnType<typeof createHostApp>): Promise<void> {
  for (let i = 0; i < 500; i++) {
    const p = await (await app.request("/v1/volumes/vol0/resync")).json();
    if (p.state !== "running") return;
    await new Promise((r) => setTimeout(r, 2));
  }
  throw new Error("A fuzzed resync did not finish");
}
