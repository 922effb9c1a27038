/**
 * The rate bound of `--resync-bytes-per-sec` (host/resync/rate_limit.ts) with several workers: the
 * bytes a job has started by `t` never exceed `rate × t`, so chunks in flight count from their
 * start (counting only finished chunks let 4 workers run 4 chunks past the bound). Resync,
 * checksum resync and verify are each run on a ManualClock whose waits the test steps by hand:
 * the clock moves only to the time a waiting worker asked to wake at.
 */
import assert from "node:assert/strict";
import { RangeLock } from "../host/fork/range_lock.ts";
import { ChecksumResync } from "../host/resync/checksum_resync.ts";
import { OnlineVerify } from "../host/resync/online_verify.ts";
import { RateLimit, type Sleep } from "../host/resync/rate_limit.ts";
import { Resync } from "../host/resync/resync.ts";
import { ManualClock } from "../src/clock.ts";
import { type ChecksumRequest, hashRegions } from "../src/region_checksums.ts";
import { randomBytes, seededRandom } from "../src/random.ts";
import type { LogPage } from "../src/schemas.ts";
import { settled } from "./support/gate.ts";
import { MemoryDevice } from "./support/memory_device.ts";

const region = 64 * 1024;
const sizeBytes = 32 * region;
const chunkBytes = 2 * region;
/** 4 regions a second: every wait is a whole number of ms (250 ms per region). */
const bytesPerSecMax = 4 * region;

/** Waits that end only when the test moves the clock to them. */
class StepSleep {
  readonly #waiting: { atMs: number; wake: () => void }[] = [];
  waits = 0;

  constructor(private readonly clock: ManualClock) {}

  readonly sleep: Sleep = (ms) => {
    this.waits++;
    return new Promise((wake) => this.#waiting.push({ atMs: this.clock.now() + ms, wake }));
  };

  /** Runs `job` to its end, moving the clock to the earliest wake whenever the job has settled. */
  async drive<T>(job: Promise<T>): Promise<T> {
    let done = false;
    job.then(() => (done = true), () => (done = true));
    while (!done) {
      await settled();
      if (done || this.#waiting.length === 0) continue; // still working (hashing, copying)
      this.#waiting.sort((a, b) => a.atMs - b.atMs);
      const next = this.#waiting.shift()!;
      this.clock.set(Math.max(this.clock.now(), next.atMs));
      next.wake();
    }
    return job;
  }
}

/** A primary that notes the clock and length of every read: a chunk's start. */
class TimedDevice extends MemoryDevice {
  readonly starts: { atMs: number; bytes: number }[] = [];
  constructor(private readonly clock: ManualClock) {
    super(sizeBytes, (b) => b.set(randomBytes(seededRandom(5), b.length)));
  }
  override read(offset: number, length: number): Promise<Uint8Array> {
    this.starts.push({ atMs: this.clock.now(), bytes: length });
    return super.read(offset, length);
  }
}

/** Asserts the bound at every start: bytes started so far ≤ rate × time since the job's start. */
function assertWithinBound(starts: { atMs: number; bytes: number }[], startedAt: number): void {
  let started = 0;
  for (const s of starts) {
    started += s.bytes;
    const allowed = (bytesPerSecMax * (s.atMs - startedAt)) / 1000;
    assert.ok(
      started <= allowed,
      `${started} bytes started by ${s.atMs - startedAt} ms > ${allowed}`,
    );
  }
}

const backup = { isOnline: true, markOffline() {} };
const writer = { writeBatch: () => Promise.resolve() };
const marker = { forget() {} };

function tracker() {
  return {
    getVolume: () =>
      Promise.resolve({ dirtyRegions: sizeBytes / region, dirtyBytes: sizeBytes } as never),
    async *log(volume: string): AsyncGenerator<LogPage> {
      const extents = [{ offset: 0, length: sizeBytes, firstMarkedAt: 1, lastMarkedAt: 1 }];
      yield { volume, regionBytes: region, sizeBytes, token: "1", extents, nextCursor: null };
    },
    clear: () => Promise.resolve({ regionsCleared: 0, regionsKept: 0 }),
    track: () => Promise.resolve({}),
  };
}

/** What the test reads of a finished job. */
interface Job {
  start(): Promise<{ state: string; error: string | null; bytesDone: number; bytesPerSec: number }>;
}

/** The three jobs `--resync-bytes-per-sec` bounds, each over a primary that times its reads. */
const jobs: Record<string, (deps: JobDeps, concurrency: number) => Job> = {
  resync: (deps: JobDeps, concurrency: number) =>
    new Resync({ volume: "vol0", regionBytes: region, ...deps }, {
      chunkBytes,
      concurrency,
      bytesPerSecMax,
    }),
  "checksum resync": (deps: JobDeps, concurrency: number) =>
    new ChecksumResync({ volume: "vol0", sizeBytes, regionBytes: region, ...deps }, {
      chunkBytes,
      concurrency,
      bytesPerSecMax,
    }),
  verify: (deps: JobDeps, concurrency: number) =>
    new OnlineVerify({ volume: "vol0", sizeBytes, regionBytes: region, hostId: "h1", ...deps }, {
      chunkBytes,
      concurrency,
      bytesPerSecMax,
    }),
};

function deps(clock: ManualClock, sleep: Sleep, primary: TimedDevice) {
  // The secondary is the primary's twin: the walks find nothing to ship or recheck.
  const secondary = {
    checksums: (_v: string, req: ChecksumRequest) =>
      hashRegions(primary.bytes.slice(req.offset, req.offset + req.length), req.regionBytes),
  };
  const locks = new RangeLock();
  return { primary, locks, backup, writer, marker, clock, sleep, secondary, tracker: tracker() };
}
type JobDeps = ReturnType<typeof deps>;

Deno.test("a resync, checksum resync and verify start no more bytes by t than the rate × t", async (t) => {
  for (const [name, make] of Object.entries(jobs)) {
    for (const concurrency of [1, 4, 8]) {
      await t.step(`${name}, ${concurrency} workers`, async () => {
        const clock = new ManualClock();
        const steps = new StepSleep(clock);
        const primary = new TimedDevice(clock);
        const job = make(deps(clock, steps.sleep, primary), concurrency);
        const startedAt = clock.now();
        const end = await steps.drive(job.start());
        assert.equal(end.state, "done", end.error ?? "");
        assert.equal(end.bytesDone, sizeBytes);
        assert.equal(primary.starts.reduce((n, s) => n + s.bytes, 0), sizeBytes);
        assertWithinBound(primary.starts, startedAt);
        // ... and no slower: the last chunk started when the bound allowed all of the volume.
        assert.equal(primary.starts.at(-1)!.atMs - startedAt, (sizeBytes / bytesPerSecMax) * 1000);
        assert.equal(end.bytesPerSec, bytesPerSecMax);
      });
    }
  }
});

Deno.test("workers queue behind the bytes reserved before them, not behind finished ones", async () => {
  const clock = new ManualClock(0);
  const steps = new StepSleep(clock);
  const rate = new RateLimit(0, 1000, clock, steps.sleep);
  const woke: number[] = [];
  // Four workers ask at once, none finished: each waits for its own share of the budget.
  const workers = [100, 100, 300, 500].map((bytes) =>
    rate.take(bytes).then(() => woke.push(clock.now()))
  );
  await steps.drive(Promise.all(workers));
  assert.deepEqual(woke, [100, 200, 500, 1000]);
  assert.equal(rate.bytesReserved, 1000);
});

Deno.test("a rate bound of 0 never waits", async () => {
  const clock = new ManualClock();
  const steps = new StepSleep(clock);
  const primary = new TimedDevice(clock);
  const job = new Resync({
    volume: "vol0",
    regionBytes: region,
    ...deps(clock, steps.sleep, primary),
  }, {
    chunkBytes,
    concurrency: 4,
    bytesPerSecMax: 0,
  });
  const end = await steps.drive(job.start());
  assert.equal(end.state, "done");
  assert.equal(steps.waits, 0);
  assert.equal(primary.starts.length, sizeBytes / chunkBytes);
});
