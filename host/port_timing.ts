/**
 * The host's calls to the backup and the tracker, timed for `/metrics` without touching the write
 * path's code: the tracker client and the link client are wrapped where main.ts builds them.
 *
 * - `trackmirror_host_backup_ack_seconds`: from a forked write's `submit` on the link to the
 *   backup's acknowledgement (its journal sync in `durable` mode, its receipt in `received`
 *   mode), queueing behind the in-flight bound included: what the write waited. A submit that
 *   fails (link lost) is not observed.
 * - `trackmirror_host_tracker_mark_seconds{kind}`: one tracking command (`dirty`) or activity
 *   command (`activity`) to its answer (the tracker answers after its KV commit). Cached marks make
 *   no call and are not observed; failed calls are not observed.
 * - the unacknowledged writes of each volume (bytes, age of the oldest): the host's own view of
 *   how far the backup is behind it. Kept as one small entry per write in flight on the link,
 *   bounded by the link's in-flight bound.
 */
import type { Histogram, Metrics } from "../src/metrics.ts";
import type { MirrorRecord } from "./fork/backup_batcher.ts";
import { LinkClient, type LinkClientOptions } from "./link/link_client.ts";
import type { HostTracker } from "./agent/ports.ts";

/** The host's latency histograms. */
export interface HostLatency {
  backupAck: Histogram;
  trackerMark: Histogram<"kind">;
}

/** Registers (or finds, when registered already) the host's latency histograms on `metrics`. */
export function hostLatency(metrics: Metrics): HostLatency {
  return {
    backupAck: metrics.histogram(
      "trackmirror_host_backup_ack_seconds",
      "Time from a forked write's submit on the backup link to the backup's acknowledgement " +
        "(journal synced in durable mode, received in received mode)",
    ),
    trackerMark: metrics.histogram(
      "trackmirror_host_tracker_mark_seconds",
      "Time of one mark command answered by the tracker (after its KV commit): kind dirty " +
        "(backup away) or activity (backup online, cold region)",
      ["kind"],
    ),
  };
}

/** `tracker` with `track` and `activity` timed into `latency.trackerMark`. */
export function timeTrackerMarks<T extends HostTracker>(tracker: T, latency: HostLatency): T {
  const timed = { track: "dirty", activity: "activity" } as const;
  return new Proxy(tracker, {
    // Getters and methods run on the client itself, not the proxy: its # fields refuse a proxy.
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (typeof value !== "function") return value;
      if (!Object.hasOwn(timed, prop)) return value.bind(target);
      const kind = timed[prop as keyof typeof timed];
      return async (...args: unknown[]) => {
        const end = latency.trackerMark.startTimer({ kind });
        const answer = await value.apply(target, args);
        end();
        return answer;
      };
    },
  });
}

/** One write in flight on the link. */
interface InFlight {
  at: number;
  bytes: number;
}

/** What each volume has on the link unacknowledged, across every link the agent opens. */
export class UnackedWrites {
  readonly #volumes = new Map<string, Set<InFlight>>();

  constructor(private readonly now: () => number = () => Date.now()) {}

  /** Counts one write until `done` settles. */
  track(volume: string, bytes: number, done: Promise<unknown>): void {
    let set = this.#volumes.get(volume);
    if (!set) this.#volumes.set(volume, set = new Set());
    const entry = { at: this.now(), bytes };
    set.add(entry);
    const remove = () => set.delete(entry);
    done.then(remove, remove);
  }

  /** Bytes unacknowledged and the age in seconds of the oldest (0 when none). */
  view(volume: string): { bytes: number; seconds: number } {
    const set = this.#volumes.get(volume);
    if (!set || set.size === 0) return { bytes: 0, seconds: 0 };
    let bytes = 0;
    for (const e of set) bytes += e.bytes;
    // A Set iterates in insertion order: the first entry is the oldest still waiting.
    const oldest = set.values().next().value!;
    return { bytes, seconds: Math.max(0, (this.now() - oldest.at) / 1000) };
  }
}

/**
 * A link factory for `HostAgentOptions.linkFactory`: real LinkClients whose forked writes are
 * timed into `latency.backupAck` and counted in `unacked`.
 */
export function timedLinkFactory(
  latency: HostLatency,
  unacked: UnackedWrites,
): (opts: LinkClientOptions) => LinkClient {
  return (opts) => new TimedLinkClient(opts, latency, unacked);
}

class TimedLinkClient extends LinkClient {
  constructor(
    opts: LinkClientOptions,
    private readonly latency: HostLatency,
    private readonly unacked: UnackedWrites,
  ) {
    super(opts);
  }

  override submit(volume: string, rec: MirrorRecord): Promise<void> {
    const end = this.latency.backupAck.startTimer();
    const done = super.submit(volume, rec);
    this.unacked.track(volume, rec.length, done);
    return done.then(() => void end());
  }
}
