/**
 * `deno task status` without services: the in-sync rule, the health and exit code the document
 * carries, the table's shape, ages, and the flags (bad ones exit 2 naming the value).
 */
import assert from "node:assert/strict";
import { runScript } from "../harness/tools.ts";
import { type InSyncFacts, notInSyncReasons } from "../src/status/in_sync.ts";
import { type Answers, assembleStatus } from "../src/status/status_assemble.ts";
import { takeWatchFlag } from "../host/status/status.ts";
import { alignColumns, formatAge, renderStatusTable } from "../host/status/status_table.ts";
import type { HostStatus } from "../src/host_schemas.ts";
import type { BackupStatus, VolumeInfo } from "../src/schemas.ts";

const inSync: InSyncFacts = {
  dirtyRegions: 0,
  dirtyBytes: 0,
  backupState: "online",
  lag: { bytes: 0, records: 0, seconds: 0 },
  trust: "trusted",
  resyncRunning: false,
  openCycleRecords: 0,
  served: true,
  fenced: false,
};

Deno.test("a volume is in sync only when every rule holds; each broken rule is named", async (t) => {
  assert.deepEqual(notInSyncReasons(inSync), []);
  const broken: [string, Partial<InSyncFacts>, RegExp][] = [
    [
      "dirty at the tracker",
      { dirtyRegions: 16, dirtyBytes: 1 << 20 },
      /16 dirty region\(s\) \(1\.00 MiB\)/,
    ],
    ["backup offline", { backupState: "offline" }, /sees its backup offline/],
    ["backup probing", { backupState: "probing" }, /sees its backup probing/],
    ["backup degraded", { backupState: "degraded" }, /sees its backup degraded/],
    ["owner away", { backupState: null, trust: null }, /did not answer/],
    [
      "lag",
      { lag: { bytes: 4096, records: 1, seconds: 2.5 } },
      /lags 1 record\(s\) \(4\.00 KiB, 2\.5 s\)/,
    ],
    ["lag unknown", { lag: null }, /lag is unknown/],
    ["untrusted", { trust: "checksum-resync-needed" }, /trust is checksum-resync-needed/],
    ["resync running", { resyncRunning: true }, /a resync is running/],
    ["cycle open", { openCycleRecords: 3 }, /cycle is open at the backup \(3 record/],
    ["not served", { served: false }, /does not serve it/],
    ["fenced", { fenced: true }, /fenced/],
  ];
  for (const [name, change, reason] of broken) {
    await t.step(name, () => {
      const reasons = notInSyncReasons({ ...inSync, ...change });
      assert.equal(reasons.length, 1, reasons.join("; "));
      assert.match(reasons[0], reason);
    });
  }
});

const trackerUrl = "http://127.0.0.1:8701";
const hostUrl = "http://127.0.0.1:8703";
const backupUrl = "http://127.0.0.1:8702";
const at = Date.parse("2026-11-24T20:00:00Z");

function volumeInfo(change: Partial<VolumeInfo> = {}): VolumeInfo {
  return {
    name: "vol0",
    sizeBytes: 1 << 30,
    regionBytes: 65536,
    ownerHost: "host0",
    ownerUrl: hostUrl,
    leaseExpiresAt: at + 30_000,
    dirtyRegions: 0,
    dirtyBytes: 0,
    oldestMarkAt: null,
    activityRegions: 0,
    activityByHost: {},
    ...change,
  };
}

function hostStatus(change: {
  backupState?: "online" | "offline" | "degraded";
  trackerState?: "online" | "offline";
  volumes?: string[];
} = {}): HostStatus {
  const resync = {
    volume: "vol0",
    state: "idle" as const,
    startedAt: null,
    finishedAt: null,
    regionsTotal: 0,
    regionsDone: 0,
    bytesTotal: 0,
    bytesDone: 0,
    regionsKept: 0,
    bytesPerSec: 0,
    etaSeconds: null,
    error: null,
  };
  return {
    host: "host0",
    url: hostUrl,
    mode: change.backupState === "online" || change.backupState === undefined
      ? "mirroring"
      : "tracking",
    ack: "durable",
    unhardened: { uncoveredRegions: 0, regionsCovered: 0 },
    components: {
      backup: {
        name: "backup",
        state: change.backupState ?? "online",
        since: at - 60_000,
        lastError: null,
        lastErrorAt: null,
        probes: 1,
        url: backupUrl,
      },
      tracker: {
        lastError: null,
        name: "tracker",
        state: change.trackerState ?? "online",
        since: at - 60_000,
        url: trackerUrl,
      },
    },
    volumes: (change.volumes ?? ["vol0"]).map((name) => ({
      name,
      path: `/data/${name}.img`,
      sizeBytes: 1 << 30,
      registered: true,
      writes: null,
      primary: { errors: 0, lastError: null, lastErrorAt: null },
      backupBatches: 0,
      trackerCommands: 0,
      trackerCacheHits: 0,
      cachedMarkedRegions: 0,
      activity: null,
      promoted: true,
      resync: { ...resync, volume: name },
      trust: "trusted",
      trustReason: null,
      leaseEpoch: 1,
      fenced: false,
      fencedReason: null,
      fencedHolder: null,
    })),
    instance: "i-1",
    startedAt: at - 120_000,
  };
}

function backupStatus(change: Partial<BackupStatus> = {}): BackupStatus {
  return {
    state: "ok",
    reason: null,
    applierError: null,
    journalBytesPending: 0,
    journalBytesMax: 1 << 30,
    recordsAcknowledged: 10,
    recordsApplied: 10,
    volumes: ["vol0"],
    lag: [{ volume: "vol0", bytes: 0, records: 0, oldestAt: null, oldestAtIso: null, seconds: 0 }],
    startedAt: at - 180_000,
    ...change,
  };
}

function answers(change: Partial<Answers> = {}): Answers {
  return {
    at,
    trackerUrl,
    tracker: { volumes: [volumeInfo()], status: null },
    hosts: new Map([[hostUrl, hostStatus()]]),
    backups: new Map([[backupUrl, backupStatus()]]),
    ...change,
  };
}

Deno.test("health and exit code: healthy 0, degraded 1, down 3, each with the problem named", async (t) => {
  const cases: [string, Answers, "healthy" | "degraded" | "down", 0 | 1 | 3, RegExp | null][] = [
    ["everything in sync", answers(), "healthy", 0, null],
    [
      "dirty at the tracker",
      answers({
        tracker: {
          volumes: [
            volumeInfo({ dirtyRegions: 2, dirtyBytes: 131072, oldestMarkAt: at - 192_000 }),
          ],
          status: null,
        },
      }),
      "degraded",
      1,
      /volume vol0: not in sync: the tracker holds 2 dirty region/,
    ],
    [
      "backup lagging",
      answers({
        backups: new Map([[
          backupUrl,
          backupStatus({
            lag: [{
              volume: "vol0",
              bytes: 4096,
              records: 1,
              oldestAt: at - 2000,
              oldestAtIso: null,
              seconds: 2,
            }],
          }),
        ]]),
      }),
      "degraded",
      1,
      /lags 1 record/,
    ],
    [
      "backup degraded",
      answers({
        hosts: new Map([[hostUrl, hostStatus({ backupState: "degraded" })]]),
        backups: new Map([[
          backupUrl,
          backupStatus({ state: "degraded", reason: "Journal full: x" }),
        ]]),
      }),
      "degraded",
      1,
      /backup http:\/\/127\.0\.0\.1:8702 is degraded: Journal full/,
    ],
    [
      "tracker unreachable",
      answers({ tracker: { error: "connection refused" } }),
      "down",
      3,
      /tracker http:\/\/127\.0\.0\.1:8701 does not answer: connection refused/,
    ],
    [
      "host agent unreachable",
      answers({ hosts: new Map([[hostUrl, { error: "timed out" }]]), backups: new Map() }),
      "down",
      3,
      /host agent http:\/\/127\.0\.0\.1:8703 does not answer: timed out/,
    ],
    [
      "backup unreachable and the host sees it offline",
      answers({
        hosts: new Map([[hostUrl, hostStatus({ backupState: "offline" })]]),
        backups: new Map([[backupUrl, { error: "refused" }]]),
      }),
      "down",
      3,
      /backup http:\/\/127\.0\.0\.1:8702 does not answer: refused/,
    ],
    [
      "the host sees its tracker offline",
      answers({ hosts: new Map([[hostUrl, hostStatus({ trackerState: "offline" })]]) }),
      "down",
      3,
      /sees its tracker offline/,
    ],
    [
      "the owner does not serve the volume",
      answers({ hosts: new Map([[hostUrl, hostStatus({ volumes: [] })]]) }),
      "down",
      3,
      /does not serve it/,
    ],
  ];
  for (const [name, a, health, code, problem] of cases) {
    await t.step(name, () => {
      const doc = assembleStatus(a);
      assert.equal(doc.health, health);
      assert.equal(doc.exitCode, code);
      if (problem === null) assert.deepEqual(doc.problems, []);
      else assert.ok(doc.problems.some((p) => problem.test(p)), doc.problems.join("\n"));
      if (health === "healthy") assert.ok(doc.volumes.every((v) => v.inSync));
    });
  }
});

Deno.test("the document carries the services' numbers and ISO times", () => {
  const doc = assembleStatus(answers({
    tracker: {
      volumes: [volumeInfo({ dirtyRegions: 16, dirtyBytes: 1 << 20, oldestMarkAt: at - 192_000 })],
      status: {
        service: "tracker",
        startedAt: at - 300_000,
        startedAtIso: "",
        now: at,
        nowIso: "",
        volumes: 1,
        dirtyVolumes: 1,
        dirtyBytes: 1 << 20,
      },
    },
  }));
  const v = doc.volumes[0];
  assert.equal(doc.atIso, "2026-11-24T20:00:00.000Z");
  assert.equal(v.dirty.bytes, 1 << 20);
  assert.equal(v.dirty.regions, 16);
  assert.equal(v.dirty.oldestMarkAgeSeconds, 192);
  assert.equal(v.dirty.oldestMarkAtIso, new Date(at - 192_000).toISOString());
  assert.equal(v.backupUrl, backupUrl);
  assert.equal(v.mode, "mirroring");
  assert.equal(doc.tracker.since, at - 300_000);
  assert.equal(doc.hosts[0].sinceIso, new Date(at - 120_000).toISOString());
  assert.equal(doc.backups[0].since, at - 180_000);
  assert.deepEqual(JSON.parse(JSON.stringify(doc)), doc, "the document is plain JSON");
});

Deno.test("the table aligns its columns and shows ages, sizes and the in-sync answer", () => {
  const lines = renderStatusTable(assembleStatus(answers({
    tracker: {
      volumes: [
        volumeInfo({ dirtyRegions: 16, dirtyBytes: 1 << 20, oldestMarkAt: at - 192_000 }),
        volumeInfo({ name: "a-much-longer-volume-name" }),
      ],
      status: null,
    },
    hosts: new Map([[hostUrl, hostStatus({ volumes: ["vol0", "a-much-longer-volume-name"] })]]),
    backups: new Map([[
      backupUrl,
      backupStatus({
        lag: [
          { volume: "vol0", bytes: 0, records: 0, oldestAt: null, oldestAtIso: null, seconds: 0 },
          {
            volume: "a-much-longer-volume-name",
            bytes: 0,
            records: 0,
            oldestAt: null,
            oldestAtIso: null,
            seconds: 0,
          },
        ],
      }),
    ]]),
  })));
  assert.match(lines[0], /^trackmirror status at 2026-11-24T20:00:00\.000Z: DEGRADED \(exit 1\)$/);
  assert.equal(lines[1], "1/2 volume(s) in sync");
  const header = lines.find((l) => l.startsWith("VOLUME"))!;
  const vol0 = lines.find((l) => l.startsWith("vol0 "))!;
  const long = lines.find((l) => l.startsWith("a-much-longer-volume-name"))!;
  for (const column of ["HOST", "MODE", "IN SYNC", "DIRTY", "OLDEST MARK", "BACKUP LAG"]) {
    const at = header.indexOf(column);
    assert.notEqual(vol0[at - 1], undefined);
    assert.equal(vol0[at - 1], " ", `column ${column} starts after a space`);
    assert.notEqual(vol0[at], " ", `vol0 has a cell under ${column}`);
    assert.notEqual(long[at], " ", `the long row has a cell under ${column}`);
  }
  assert.match(vol0, / no +1\.00 MiB \(16 r\) +3m12s +0 +trusted/);
  assert.match(long, / yes +0 +- +0 +trusted/);
  assert.ok(
    lines.includes("  volume vol0: not in sync: the tracker holds 16 dirty region(s) (1.00 MiB)"),
  );
});

Deno.test("ages read like 3m12s; columns pad to the widest cell", () => {
  const ages: [number, string][] = [
    [0.2, "<1s"],
    [1, "1s"],
    [59.9, "59s"],
    [192, "3m12s"],
    [3600 + 5 * 60, "1h05m"],
    [86400 * 3 + 4 * 3600, "3d04h"],
  ];
  for (const [seconds, text] of ages) assert.equal(formatAge(seconds), text, String(seconds));
  assert.deepEqual(alignColumns([["A", "BB", "C"], ["long", "x", "y"]]), [
    "A     BB  C",
    "long  x   y",
  ]);
});

Deno.test("--watch takes an optional number of seconds", () => {
  assert.deepEqual(takeWatchFlag(["--json"]), { watchSeconds: undefined, rest: ["--json"] });
  assert.deepEqual(takeWatchFlag(["--watch"]), { watchSeconds: 2, rest: [] });
  assert.deepEqual(takeWatchFlag(["--watch", "5", "--json"]), {
    watchSeconds: 5,
    rest: ["--json"],
  });
  assert.deepEqual(takeWatchFlag(["--watch", "--json"]), { watchSeconds: 2, rest: ["--json"] });
  assert.deepEqual(takeWatchFlag(["--watch=0.5"]), { watchSeconds: 0.5, rest: [] });
  for (const bad of ["abc", "0", "-1", "7200"]) {
    assert.throws(
      () => takeWatchFlag([`--watch=${bad}`]),
      (err: Error) => err instanceof RangeError && err.message.includes(`--watch "${bad}"`),
    );
  }
});

Deno.test("--help prints the usage and exit codes and asks nothing", async () => {
  const out = await runScript("host/status/status.ts", [
    "--help",
    "--tracker",
    "http://127.0.0.1:1",
  ]);
  assert.equal(out.code, 0, out.stderr);
  assert.match(out.stdout, /^Usage: deno task status/);
  assert.match(out.stdout, /Exit codes: 0 healthy, 1 degraded, 2 bad flags, 3 down/);
});

Deno.test("bad flags exit 2 naming the flag and value", async () => {
  const cases: [string[], RegExp][] = [
    [["--tracker", "ftp://x"], /--tracker "ftp:\/\/x" must be an http/],
    [["--watch", "soon"], /--watch "soon" must be a number of seconds/],
    [["--bogus"], /bogus/],
    [["--events", "--watch"], /--events and --watch cannot be combined/],
  ];
  for (const [args, message] of cases) {
    const out = await runScript("host/status/status.ts", args);
    assert.equal(out.code, 2, `${args.join(" ")}: ${out.stdout}${out.stderr}`);
    assert.match(out.stderr, message);
  }
});

Deno.test("several trackers: a standby that does not answer is degraded, none answering is down, the table lists each", () => {
  const standby = "http://127.0.0.1:8711";
  const trackers = (state: "online" | "offline") => [
    { url: trackerUrl, current: true, state: "online" as const, error: null },
    { url: standby, current: false, state, error: state === "online" ? null : "refused" },
  ];
  const healthy = assembleStatus(answers({ trackers: trackers("online") }));
  assert.equal(healthy.health, "healthy", healthy.problems.join("\n"));
  assert.equal(healthy.tracker.urls?.length, 2);

  const degraded = assembleStatus(answers({ trackers: trackers("offline") }));
  assert.equal(degraded.health, "degraded");
  assert.deepEqual(degraded.problems, [
    `tracker ${standby} (standby) does not answer: refused`,
  ]);
  const table = renderStatusTable(degraded).join("\n");
  assert.match(table, new RegExp(`${trackerUrl} \\(current\\) +online`));
  assert.match(table, new RegExp(`${standby} \\(standby\\) +offline`));

  const down = assembleStatus(answers({
    trackers: trackers("offline").map((t) => ({ ...t, state: "offline" as const, error: "x" })),
    tracker: { error: "no answer" },
  }));
  assert.equal(down.health, "down");
  assert.match(
    down.problems[0],
    new RegExp(`none of the trackers ${trackerUrl}, ${standby} answers`),
  );
});

Deno.test("a tracker whose store does not answer makes the system down, naming the store; the table and document show it", () => {
  const store = {
    kind: "etcd" as const,
    ok: false,
    checkedAt: at - 1000,
    checkedAtIso: new Date(at - 1000).toISOString(),
    error: "no quorum: none of 3 member(s) answers a linearizable read within 1000 ms (…)",
    endpoints: [{ url: "http://127.0.0.1:2379", ok: false, error: "no answer within 1000 ms" }],
  };
  const status = {
    service: "tracker" as const,
    startedAt: at - 60_000,
    startedAtIso: "",
    now: at,
    nowIso: "",
    volumes: 1,
    dirtyVolumes: 0,
    dirtyBytes: 0,
    store,
  };
  const healthy = assembleStatus(answers({
    tracker: { volumes: [volumeInfo()], status: { ...status, store: { ...store, ok: true } } },
  }));
  assert.equal(healthy.health, "healthy", healthy.problems.join("\n"));
  assert.equal(healthy.tracker.store?.ok, true);
  assert.match(renderStatusTable(healthy).join("\n"), /etcd ok \(checked 1s ago\)/);

  // The gather does not ask for volumes (they would wait on the store): only the status came.
  const down = assembleStatus(answers({
    tracker: { error: "store: etcd no quorum: …", status },
    hosts: new Map(),
    backups: new Map(),
  }));
  assert.equal(down.health, "down");
  assert.equal(down.exitCode, 3);
  assert.match(
    down.problems[0],
    new RegExp(
      `^tracker ${trackerUrl} answers but its store does not: store: etcd no quorum: none of 3`,
    ),
  );
  assert.equal(down.tracker.state, "degraded");
  assert.equal(down.tracker.since, at - 60_000);
  assert.deepEqual(down.tracker.store, store);
  assert.deepEqual(
    JSON.parse(JSON.stringify(down)).tracker.store,
    store,
    "the document carries it",
  );
  const table = renderStatusTable(down).join("\n");
  assert.match(table, /volumes unknown: the tracker's store: etcd no quorum: none of 3/);
  assert.match(table, /etcd NOT OK \(checked 1s ago\)/);

  // Volumes read before the probe noticed: still down, every volume listed.
  const listed = assembleStatus(answers({ tracker: { volumes: [volumeInfo()], status } }));
  assert.equal(listed.exitCode, 3);
  assert.equal(listed.volumes.length, 1);
  assert.ok(listed.problems.some((p) => /its store does not: store: etcd no quorum/.test(p)));
});
