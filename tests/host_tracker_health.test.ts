/**
 * The tracker's row of the host's status (issue 11): with the tracker away and writes failing,
 * the status used to say `tracker: {lastError: null}`. Every tracker call of the agent now moves
 * `components.tracker` — no answer is `offline` with the error, any answer (a refusal too) is
 * `online` — and the times come with ISO 8601 twins.
 */
import assert from "node:assert/strict";
import { HostAgent } from "../host/agent/host_agent.ts";
import { TrackerHealth, watchTracker } from "../host/agent/tracker_health.ts";
import { ManualClock } from "../src/clock.ts";
import { ServiceCallError } from "../src/http_client.ts";
import type { TrackRequest } from "../src/schemas.ts";
import { FakeBackup, FakeTracker } from "./support/fake_ports.ts";
import { StepTimers } from "./support/step_timers.ts";

const region = 64 * 1024;

/** A tracker whose marks get no answer while `away` is set. */
class AwayTracker extends FakeTracker {
  away = false;
  override track(req: TrackRequest): Promise<unknown> {
    if (this.away) {
      return Promise.reject(new ServiceCallError(0, "POST /v1/track failed: Connection refused"));
    }
    return super.track(req);
  }
}

Deno.test("a write the tracker cannot take shows the tracker offline, with the error, in the host status", async () => {
  const dir = await Deno.makeTempDir();
  const clock = new ManualClock(1_000_000);
  const tracker = new AwayTracker();
  const agent = await HostAgent.open({
    hostId: "host0",
    advertiseUrl: "http://127.0.0.1:1",
    volumes: [{ name: "vol0", path: `${dir}/vol0.img`, sizeBytes: 16 * region }],
    regionBytes: region,
    tracker,
    backup: new FakeBackup(),
    clock,
    probe: { timers: new StepTimers() }, // never fired: the backup stays away, writes are tracked
  });
  try {
    const before = agent.status().components.tracker;
    assert.equal(before.state, "online");
    assert.equal(before.lastError, null);

    tracker.away = true;
    clock.advance(5000);
    const fork = agent.volume("vol0")!.fork!;
    await assert.rejects(fork.write(0, new Uint8Array(4096)));
    const away = agent.status().components.tracker;
    assert.equal(away.state, "offline");
    assert.match(away.lastError ?? "", /Connection refused/);
    assert.equal(away.since, 1_005_000);
    assert.equal(away.sinceIso, new Date(1_005_000).toISOString());
    assert.equal(away.lastErrorAtIso, new Date(1_005_000).toISOString());
    assert.equal(away.failures, 1);

    tracker.away = false;
    clock.advance(1000);
    await fork.write(0, new Uint8Array(4096));
    const back = agent.status().components.tracker;
    assert.equal(back.state, "online");
    assert.equal(back.since, 1_006_000);
    assert.match(
      back.lastError ?? "",
      /Connection refused/,
      "the last error is kept, like the backup's",
    );
  } finally {
    await agent.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a refusal is an answer: the tracker stays online; no answer or a 5xx is offline", async () => {
  const cases: { err: unknown; state: string }[] = [
    { err: new ServiceCallError(409, "Volume is fenced"), state: "online" },
    { err: new ServiceCallError(404, "No such volume"), state: "online" },
    { err: new ServiceCallError(0, "no answer within 10000 ms"), state: "offline" },
    { err: new ServiceCallError(503, "busy"), state: "offline" },
    { err: new Error("socket hang up"), state: "offline" },
  ];
  for (const { err, state } of cases) {
    const health = new TrackerHealth(new ManualClock());
    const port = { call: () => Promise.reject(err), baseUrl: "http://t" };
    const watched = watchTracker(port, health);
    await assert.rejects(watched.call(), (e) => e === err);
    assert.equal(health.state, state, String(err));
    assert.equal(watched.baseUrl, "http://t");
  }
});
