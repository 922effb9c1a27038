import assert from "node:assert/strict";
import { ManualClock } from "../src/clock.ts";
import { applyServiceBasics } from "../src/service.ts";
import { EventLog, eventSchema, type TrackmirrorEvent } from "../src/events.ts";
import { eventStreamApp } from "../src/event_stream.ts";
import { newApiApp } from "../src/api_route.ts";
import { formatLogLine, parseLogFormat } from "../src/log_line.ts";
import { sseMessages } from "../host/status/status_events.ts";

function quietLog(
  ringMax?: number,
  clock = new ManualClock(Date.parse("2026-11-24T22:40:01.123Z")),
) {
  const written: TrackmirrorEvent[] = [];
  const log = new EventLog({ clock, ringMax, write: (e) => written.push(e) });
  return { log, written, clock };
}

function emitN(log: EventLog, n: number): void {
  for (let i = 0; i < n; i++) {
    log.emit({ service: "host", kind: "test.tick", message: `tick ${i}`, data: { i } });
  }
}

Deno.test("the event ring keeps the newest ringMax events, oldest first", () => {
  const { log, written } = quietLog(3);
  emitN(log, 5);
  assert.equal(written.length, 5, "every event is written as a line, kept or not");
  assert.deepEqual(log.after(0).map((e) => e.seq), [3, 4, 5]);
  emitN(log, 2);
  assert.deepEqual(log.after(0).map((e) => e.seq), [5, 6, 7]);
  assert.equal(log.lastSeq, 7);
});

Deno.test("replay gives the kept events after a seq; a seq never reached gives the whole ring", async (t) => {
  const { log } = quietLog(4);
  emitN(log, 6); // keeps 3..6
  const cases: [number, number[]][] = [
    [0, [3, 4, 5, 6]],
    [4, [5, 6]],
    [6, []],
    [1, [3, 4, 5, 6]], // older than the ring: what is kept
    [99, [3, 4, 5, 6]], // the process restarted since the caller saw seq 99
  ];
  for (const [seq, want] of cases) {
    await t.step(`after ${seq}`, () => assert.deepEqual(log.after(seq).map((e) => e.seq), want));
  }
});

Deno.test("events carry seq, time and its ISO twin, and parse with the exported schema", () => {
  const { log, clock } = quietLog();
  const e = log.emit({
    service: "tracker",
    level: "warn",
    kind: "volume.dirty",
    volume: "vol0",
    message: 'volume "vol0" is dirty',
    data: { dirtyRegions: 16 },
  });
  assert.deepEqual(eventSchema.parse(e), e);
  assert.equal(e.at, clock.now());
  assert.equal(e.atIso, "2026-11-24T22:40:01.123Z");
  assert.equal(e.seq, 1);
  const plain = log.emit({ service: "host", kind: "log", message: "hello" });
  assert.equal(plain.level, "info", "the default level");
  assert.equal("volume" in plain || "data" in plain, false, "absent fields stay absent");
});

Deno.test("an event told after the fact keeps the time given; seq follows the emitting", () => {
  const { log, clock } = quietLog();
  const now = log.emit({ service: "tracker", kind: "volume.clean", message: "clean" });
  const earlier = log.emit({
    at: clock.now() - 300,
    service: "host",
    kind: "resync.start",
    message: "started",
  });
  assert.equal(earlier.at, now.at - 300);
  assert.equal(earlier.atIso, "2026-11-24T22:40:00.823Z");
  assert.equal(earlier.seq, now.seq + 1);
  assert.equal(log.after(0)[1].at, now.at - 300, "the ring keeps it");
});

Deno.test("an event's data larger than the bound is replaced by a note", () => {
  const { log } = quietLog();
  const e = log.emit({
    service: "host",
    kind: "log",
    message: "big",
    data: { s: "x".repeat(9000) },
  });
  assert.equal(e.data?.cut, true);
});

Deno.test("log lines: text is time, level, service, message; json is the event", () => {
  const e: TrackmirrorEvent = {
    seq: 7,
    at: Date.parse("2026-11-24T22:40:01.123Z"),
    atIso: "2026-11-24T22:40:01.123Z",
    level: "info",
    service: "host",
    kind: "component.offline",
    message: "backup offline (Connection refused)",
    data: { component: "backup" },
  };
  assert.equal(
    formatLogLine(e, "text"),
    "2026-11-24T22:40:01.123Z INFO  host backup offline (Connection refused)",
  );
  assert.equal(
    formatLogLine({ ...e, level: "error" }, "text"),
    "2026-11-24T22:40:01.123Z ERROR host backup offline (Connection refused)",
  );
  const json = JSON.parse(formatLogLine(e, "json"));
  assert.deepEqual(json, e);
  assert.equal(parseLogFormat(undefined), "text");
  assert.equal(parseLogFormat("json"), "json");
  assert.throws(() => parseLogFormat("xml"), /--log-format "xml" must be one of: text, json/);
});

Deno.test("subscribers get every new event; endFollowers ends them once", () => {
  const { log } = quietLog();
  const seen: number[] = [];
  let ended = 0;
  const unsubscribe = log.subscribe((e) => seen.push(e.seq), () => ended++);
  emitN(log, 2);
  log.endFollowers();
  log.endFollowers();
  assert.equal(ended, 1);
  unsubscribe();
  emitN(log, 1);
  assert.deepEqual(seen, [1, 2]);
  assert.equal(log.subscribers, 0);
});

/** Reads `n` SSE messages of `res`, then cancels it. */
async function readMessages(res: Response, n: number) {
  const got: { id?: string; event?: string; data: string }[] = [];
  const reader = sseMessages(res.body!);
  for await (const m of reader) {
    got.push(m);
    if (got.length === n) break;
  }
  await reader.return(undefined);
  return got;
}

Deno.test("GET /v1/events replays after Last-Event-ID or ?since, then follows live", async (t) => {
  const { log } = quietLog();
  // Mounted as the services mount it, behind the shared error handler.
  const app = newApiApp();
  applyServiceBasics(app, "host");
  app.route("/", eventStreamApp("test", { log }));
  emitN(log, 3);
  await t.step("?since=1 replays 2 and 3, then a live 4", async () => {
    const res = await app.request("/v1/events?since=1");
    assert.equal(res.headers.get("content-type"), "text/event-stream");
    const reading = readMessages(res, 3);
    await new Promise((r) => setTimeout(r, 0));
    emitN(log, 1);
    const got = await reading;
    assert.deepEqual(got.map((m) => m.id), ["2", "3", "4"]);
    assert.deepEqual(got.map((m) => m.event), ["test.tick", "test.tick", "test.tick"]);
    assert.deepEqual(got.map((m) => eventSchema.parse(JSON.parse(m.data)).seq), [2, 3, 4]);
  });
  await t.step("Last-Event-ID wins over ?since", async () => {
    const res = await app.request("/v1/events?since=0", { headers: { "last-event-id": "3" } });
    const got = await readMessages(res, 1);
    assert.deepEqual(got.map((m) => m.id), ["4"]);
  });
  await t.step("a bad seq is refused naming it", async () => {
    const res = await app.request("/v1/events?since=soon");
    assert.equal(res.status, 400);
    assert.match((await res.json()).error.message, /since "soon" must be a whole number/);
  });
  await t.step("without a seq, only live events", async () => {
    const res = await app.request("/v1/events");
    const reading = readMessages(res, 1);
    await new Promise((r) => setTimeout(r, 0));
    emitN(log, 1);
    assert.deepEqual((await reading).map((m) => m.id), ["5"]);
  });
  await t.step("endFollowers ends an open stream", async () => {
    const res = await app.request("/v1/events");
    const reading = readMessages(res, 99);
    await new Promise((r) => setTimeout(r, 0));
    log.endFollowers();
    assert.deepEqual(await reading, []);
  });
});

Deno.test("a quiet stream sends heartbeat comments", async () => {
  const { log } = quietLog();
  const res = await eventStreamApp("test", { log, heartbeatMs: 10 }).request("/v1/events");
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes(": heartbeat")) text += (await reader.read()).value ?? "";
  await reader.cancel();
  log.endFollowers();
});
