/**
 * The host's side of fencing, in-process: a volume's LeaseGuard learns from the first fencing
 * refusal (tracker mark, backup batch, lease renewal) and from then on the fork layer fails every
 * write before anything is sent or written — even one whose regions the marker cache holds —
 * and the status document says `fenced`. A refusal of another volume, or a plain 409, fences
 * nothing.
 */
import assert from "node:assert/strict";
import { HostAgent } from "../host/agent/host_agent.ts";
import type { MirrorRecord } from "../host/fork/backup_batcher.ts";
import { ForkDevice } from "../host/fork/fork_device.ts";
import { leasedTracker, LeaseGuard } from "../host/fork/lease_guard.ts";
import { RangeLock } from "../host/fork/range_lock.ts";
import { PassThroughDevice } from "../src/block_device.ts";
import { ManualClock } from "../src/clock.ts";
import { ServiceError } from "../src/errors.ts";
import { fencedError } from "../src/fencing.ts";
import type { TrackRequest } from "../src/schemas.ts";
import { FakeBackup, FakeTracker } from "./support/fake_ports.ts";

const guard = () => new LeaseGuard("vol0", "inst-a", "m:/p/vol0.img", () => 5_000);

Deno.test("a lease claim is sent only once the tracker granted an epoch, which never goes back", () => {
  const g = guard();
  assert.deepEqual(g.claim(), {});
  g.granted(4);
  g.granted(2);
  g.granted(undefined);
  assert.deepEqual(g.claim(), { instance: "inst-a", leaseEpoch: 4 });
});

Deno.test("only a fencing refusal of this volume fences it, and then every check fails with 409 naming the reason", () => {
  const g = guard();
  assert.equal(g.noteRefusal(new ServiceError(409, 'Volume "vol0" is leased to host "h1"')), false);
  assert.equal(g.noteRefusal(fencedError("vol1", "another instance")), false);
  g.check("Write");
  assert.equal(
    g.noteRefusal(
      new Error(
        `The backup failed the link (409): ${
          fencedError("vol0", "lease epoch 1 is older than 2").message
        }`,
      ),
    ),
    true,
  );
  assert.throws(
    () => g.check('Write to volume "vol0" at 0+4096'),
    (err: unknown) =>
      err instanceof ServiceError && err.status === 409 &&
      /^Write to volume "vol0" at 0\+4096 refused: this host agent no longer holds volume "vol0" \(fenced since 1970-01-01T00:00:05\.000Z\): The backup failed the link \(409\): Volume "vol0" is fenced: lease epoch 1 is older than 2$/
        .test(err.message),
  );
});

Deno.test("the leased tracker adds the claim to every change of tracking state and fences on its refusal", async () => {
  const g = guard();
  g.granted(3);
  const sent: TrackRequest[] = [];
  let refuse = false;
  const inner = {
    track(req: TrackRequest) {
      sent.push(req);
      return refuse
        ? Promise.reject(fencedError("vol0", 'host "h1" holds it'))
        : Promise.resolve({});
    },
    activity: (req: TrackRequest) => inner.track(req),
    retireActivity: (_v: string, req: { host: string; extents: TrackRequest["extents"] }) =>
      inner.track({ volume: "vol0", ...req }),
    clear: () => Promise.resolve({ regionsCleared: 0, regionsKept: 0 }),
    untouched: () => "passed through",
  };
  const tracker = leasedTracker(inner, g);
  const extents = [{ offset: 0, length: 1 }];
  await tracker.track({ volume: "vol0", host: "h0", extents });
  await tracker.activity({ volume: "vol0", host: "h0", extents });
  await tracker.retireActivity("vol0", { host: "h0", extents });
  assert.ok(sent.every((r) => r.instance === "inst-a" && r.leaseEpoch === 3));
  assert.equal(tracker.untouched(), "passed through");
  refuse = true;
  await assert.rejects(tracker.track({ volume: "vol0", host: "h0", extents }), /is fenced/);
  assert.notEqual(g.fenced, null);
});

function forkRig(g: LeaseGuard, backupError?: Error) {
  const trace: string[] = [];
  const primary = new (class extends PassThroughDevice {
    override write(offset: number, data: Uint8Array) {
      trace.push(`primary.write ${offset}+${data.length}`);
      return Promise.resolve();
    }
  })({} as never);
  const fork = new ForkDevice(primary, {
    volume: "vol0",
    locks: new RangeLock(),
    backup: {
      isOnline: true,
      markOffline: () => trace.push("backup.offline"),
    },
    batcher: {
      submit(rec: MirrorRecord) {
        trace.push(`backup.submit ${rec.offset}`);
        return backupError ? Promise.reject(backupError) : Promise.resolve();
      },
    },
    // A cached mark: the marker would answer without asking the tracker.
    marker: { ensureMarked: () => (trace.push("tracker.cached"), Promise.resolve()) },
    lease: g,
  });
  return { trace, fork };
}

Deno.test("a backup fencing refusal fails the write with 409 without falling back to a (cached) tracker mark", async () => {
  const g = guard();
  const fenced = new Error(
    `The backup failed the link (409): ${
      fencedError("vol0", "lease epoch 1 is older than 2").message
    }`,
  );
  const { trace, fork } = forkRig(g, fenced);
  await assert.rejects(
    fork.write(0, new Uint8Array(4096)),
    (err: unknown) => err instanceof ServiceError && err.status === 409,
  );
  assert.deepEqual(trace, ["backup.submit 0"]);
  assert.equal(fork.counters.failed, 1);
  await assert.rejects(fork.write(8192, new Uint8Array(4096)), /no longer holds volume "vol0"/);
  assert.deepEqual(trace, ["backup.submit 0"], "a fenced volume sent or wrote something");
});

Deno.test("a backup failure that is not a fence still falls back to the tracker", async () => {
  const g = guard();
  const { trace, fork } = forkRig(
    g,
    new Error(`The backup failed the link (409): ${fencedError("vol1", "x").message}`),
  );
  await fork.write(0, new Uint8Array(4096));
  assert.deepEqual(trace, [
    "backup.submit 0",
    "backup.offline",
    "tracker.cached",
    "primary.write 0+4096",
  ]);
  assert.equal(g.fenced, null);
});

Deno.test("a lease renewal refused with 409 fences the volume for good and the status says fenced", async () => {
  const dir = await Deno.makeTempDir();
  const tracker = new FakeTracker();
  const backup = new FakeBackup();
  const agent = await HostAgent.open({
    hostId: "host0",
    advertiseUrl: "http://127.0.0.1:1",
    volumes: [{ name: "vol0", path: `${dir}/vol0.img`, sizeBytes: 1 << 20 }],
    regionBytes: 64 * 1024,
    tracker,
    backup,
    clock: new ManualClock(),
    leaseMs: 30,
    linkFactory: backup.linkFactory,
  });
  try {
    const before = agent.status().volumes[0];
    assert.deepEqual([before.fenced, before.fencedReason], [false, null]);
    assert.equal(tracker.registrations[0].reg.ownerInstance, agent.instance);
    assert.match(tracker.registrations[0].reg.ownerPrimary ?? "", /:\/.*\/vol0\.img$/);
    tracker.refuse = {
      status: 409,
      message: 'Volume "vol0" is leased to host "host0" (instance x)',
    };
    const count = tracker.registrations.length;
    while (!agent.status().volumes[0].fenced) await new Promise((r) => setTimeout(r, 5));
    const after = agent.status().volumes[0];
    assert.match(after.fencedReason ?? "", /refused the lease renewal: Volume "vol0" is leased/);
    tracker.refuse = undefined;
    await new Promise((r) => setTimeout(r, 50)); // several renewal periods
    assert.equal(tracker.registrations.length, count, "a fenced volume's lease was renewed");
    await assert.rejects(
      agent.volume("vol0")!.device.write(0, new Uint8Array(512)),
      (err: unknown) => err instanceof ServiceError && err.status === 409,
    );
  } finally {
    await agent.close();
    await Deno.remove(dir, { recursive: true });
  }
});
