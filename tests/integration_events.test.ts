/**
 * Events against real processes (harness/system.ts): the host's and the tracker's
 * `GET /v1/events` streams show a SIGKILLed backup (component.offline, mode.change to tracking,
 * volume.dirty at the tracker), its return and the repair (component.online, resync start and
 * finish, volume.clean); `deno task status --events --json` prints them; services started with
 * `--log-format json` print only JSON lines with `at` and `level`, the tracker's text lines carry
 * time and level.
 */
import assert from "node:assert/strict";
import { startSystem, type System } from "../harness/system.ts";
import { eventSchema, type TrackmirrorEvent } from "../src/events.ts";
import { sseMessages } from "../host/status/status_events.ts";

/** Bound on waiting for an event the system owes (probes back off up to 5 s). */
const eventWaitMsMax = 30_000;

/** Follows `url`'s events from the start of its ring into `events` until `signal` aborts. */
function follow(url: string, events: TrackmirrorEvent[], signal: AbortSignal): Promise<void> {
  return (async () => {
    try {
      const res = await fetch(`${url}/v1/events?since=0`, { signal });
      assert.equal(res.headers.get("content-type"), "text/event-stream");
      for await (const m of sseMessages(res.body!)) {
        const e = eventSchema.parse(JSON.parse(m.data));
        assert.equal(m.id, String(e.seq));
        assert.equal(m.event, e.kind);
        events.push(e);
      }
    } catch (err) {
      if (!signal.aborted) throw err;
    }
  })();
}

/** Waits (bounded) until `events` holds one that `match` accepts; returns it. */
async function eventually(
  events: TrackmirrorEvent[],
  what: string,
  match: (e: TrackmirrorEvent) => boolean,
  sys: System,
): Promise<TrackmirrorEvent> {
  const deadline = Date.now() + eventWaitMsMax;
  while (Date.now() < deadline) {
    const found = events.find(match);
    if (found) return found;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(
    `No ${what} event; got:\n${
      events.map((e) => `${e.service} ${e.kind} ${e.message}`).join("\n")
    }` +
      `\n--- host output ---\n${sys.host.output()}`,
  );
}

async function write(sys: System, offset: number): Promise<void> {
  const res = await fetch(`${sys.host.url}/v1/volumes/vol0/data?offset=${offset}`, {
    method: "PUT",
    body: crypto.getRandomValues(new Uint8Array(65536)),
  });
  await res.body?.cancel();
  assert.equal(res.status, 204, `write at ${offset} answered ${res.status}`);
}

/**
 * Runs `status --events --json` until `done` accepts what it printed, then SIGTERMs it; `during`
 * runs once an event of the host agent is printed (the follower reads the host's stream: the
 * host is found through the tracker, so the tracker's first event comes before that).
 */
async function statusEvents(
  sys: System,
  done: (events: (TrackmirrorEvent & { source: string })[]) => boolean,
  during?: () => Promise<void>,
) {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--quiet",
      "host/status/status.ts",
      "--tracker",
      sys.tracker.url,
      "--events",
      "--json",
    ],
    cwd: new URL("../", import.meta.url).pathname,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  let notes = "";
  const notesRead = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) notes += chunk;
  })();
  let acting: Promise<void> | undefined;
  const printed: (TrackmirrorEvent & { source: string })[] = [];
  const timer = setTimeout(() => child.kill("SIGKILL"), eventWaitMsMax);
  let text = "";
  try {
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      text += chunk;
      const lines = text.split("\n");
      text = lines.pop()!;
      for (const line of lines) printed.push(JSON.parse(line));
      if (during && printed.some((e) => e.source === sys.host.url)) acting ??= during();
      if (done(printed)) {
        child.kill("SIGTERM");
        break;
      }
    }
    await child.stdout.cancel().catch(() => {});
  } finally {
    clearTimeout(timer);
  }
  await acting;
  const code = (await child.status).code;
  await notesRead;
  return { code, printed, notes };
}

Deno.test("events: a backup outage and its repair, on the SSE streams, in status --events and in JSON log lines", async () => {
  const sys = await startSystem({
    sizeBytes: 16 * 1024 * 1024,
    hostArgs: ["--log-format", "json"],
    backupArgs: ["--log-format", "json"],
  });
  const aborter = new AbortController();
  const hostEvents: TrackmirrorEvent[] = [];
  const trackerEvents: TrackmirrorEvent[] = [];
  const following = [
    follow(sys.host.url, hostEvents, aborter.signal),
    follow(sys.tracker.url, trackerEvents, aborter.signal),
  ];
  try {
    await sys.waitMirroring();
    await eventually(hostEvents, "backup online", (e) => e.kind === "component.online", sys);
    await eventually(
      trackerEvents,
      "volume registered",
      (e) => e.kind === "volume.registered" && e.volume === "vol0",
      sys,
    );
    await write(sys, 0);

    await sys.backup.kill();
    await write(sys, 1024 * 1024); // tracked: the backup is gone
    const offline = await eventually(
      hostEvents,
      "backup offline",
      (e) => e.kind === "component.offline" && e.data?.component === "backup",
      sys,
    );
    assert.equal(offline.level, "error");
    assert.equal(offline.data?.url, sys.backup.url);
    const tracking = await eventually(
      hostEvents,
      "mode tracking",
      (e) => e.kind === "mode.change" && e.volume === "vol0" && e.data?.to === "tracking",
      sys,
    );
    assert.equal(tracking.data?.from, "mirroring");
    const dirty = await eventually(
      trackerEvents,
      "volume dirty",
      (e) => e.kind === "volume.dirty" && e.volume === "vol0",
      sys,
    );
    assert.equal(dirty.data?.dirtyRegions, 1);
    assert.ok(hostEvents.indexOf(offline) < hostEvents.indexOf(tracking), "offline, then tracking");

    // status --events replays both services' rings and prints them as JSON lines.
    const out = await statusEvents(
      sys,
      (printed) =>
        printed.some((e) => e.kind === "mode.change" && e.data?.to === "tracking") &&
        printed.some((e) => e.kind === "volume.dirty"),
    );
    assert.equal(out.code, 0, "SIGTERM ends status --events with 0");
    const fromHost = out.printed.find((e) => e.kind === "component.offline")!;
    assert.equal(fromHost.source, sys.host.url);
    assert.deepEqual(eventSchema.parse(fromHost), offline);
    assert.equal(out.printed.find((e) => e.kind === "volume.dirty")!.source, sys.tracker.url);

    // The backup returns; reconstruct repairs the volume.
    await sys.restartBackup();
    await sys.waitMirroring();
    await eventually(
      hostEvents,
      "backup online again",
      (e) => e.kind === "component.online" && e.seq > offline.seq,
      sys,
    );
    await eventually(
      hostEvents,
      "mode mirroring again",
      (e) => e.kind === "mode.change" && e.data?.to === "mirroring" && e.seq > tracking.seq,
      sys,
    );
    const rc = await sys.reconstruct();
    assert.equal(rc.code, 0, rc.output);
    await eventually(hostEvents, "resync start", (e) => e.kind === "resync.start", sys);
    const finish = await eventually(
      hostEvents,
      "resync finish",
      (e) => e.kind === "resync.finish",
      sys,
    );
    assert.equal(finish.data?.regionsDone, 1);
    await eventually(
      trackerEvents,
      "volume clean",
      (e) => e.kind === "volume.clean" && e.volume === "vol0",
      sys,
    );

    // --log-format json: every line of the host and the backup is an event with at and level.
    for (const [name, output] of [["host", sys.host.output()], ["backup", sys.backup.output()]]) {
      const lines = output.split("\n").filter((l) => l.trim() !== "");
      assert.ok(lines.length > 0, `${name} printed lines`);
      for (const line of lines) {
        const e = JSON.parse(line);
        assert.equal(typeof e.at, "number", `${name}: ${line}`);
        assert.match(e.level, /^(debug|info|warn|error)$/, `${name}: ${line}`);
        assert.equal(e.service, name);
      }
    }
    // The tracker was left at the default, text: time, level, service, message.
    assert.match(
      sys.tracker.output(),
      /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO {2}tracker listening on http:\/\/127\.0\.0\.1:\d+ \(version /m,
    );
  } finally {
    aborter.abort();
    await Promise.all(following);
    await sys.stop();
  }
});

Deno.test("status --events reconnects to a host agent that was SIGKILLed and restarted, and reads it from the start", async () => {
  const sys = await startSystem({ sizeBytes: 4 * 1024 * 1024 });
  try {
    await sys.waitMirroring();
    const hostLeases = (printed: (TrackmirrorEvent & { source: string })[]) =>
      printed.filter((e) => e.source === sys.host.url && e.kind === "lease.taken");
    const out = await statusEvents(
      sys,
      (printed) => hostLeases(printed).length >= 2,
      () => sys.restartHost(),
    );
    assert.equal(out.code, 0, out.notes);
    const [first, second] = hostLeases(out.printed);
    // The new process numbers from 1 again; it was read from the start of its ring.
    assert.equal(second.seq, first.seq, "the restarted agent's lease.taken, from its own seq 1..");
    assert.ok(second.at > first.at);
    assert.match(out.notes, new RegExp(`${sys.host.url}: .*reconnecting in \\d+ ms`));
    assert.match(out.notes, /restarted \(pid \d+ -> \d+\)/);
  } finally {
    await sys.stop();
  }
});
