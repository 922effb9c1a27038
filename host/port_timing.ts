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
 *   how far the backup is behind it. Read from the links' own queues at scrape time, bounded by
 *   the link's in-flight bound.
 */
import type { Histogram, Metrics } from "../src/metrics.ts";
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

/**
 * What each volume has on the link unacknowledged, across every link the agent opens. The links
 * keep it themselves (a submit time per write they hold anyway); this asks the live ones at
 * scrape time, so the write path pays no entry, promise or timer of its own for it.
 */
export class UnackedWrites {
  readonly #links = new Set<LinkClient>();

  constructor(private readonly now: () => number = () => performance.now()) {}

  /** Counts the writes of `link` from now on; a failed link is dropped once it holds none. */
  add(link: LinkClient): void {
    this.#links.add(link);
  }

  /** Bytes unacknowledged and the age in seconds of the oldest (0 when none). */
  view(volume: string): { bytes: number; seconds: number } {
    let bytes = 0;
    let oldestAt: number | undefined;
    for (const link of this.#links) {
      const u = link.unacked(volume);
      bytes += u.bytes;
      if (u.oldestAt !== undefined && (oldestAt === undefined || u.oldestAt < oldestAt)) {
        oldestAt = u.oldestAt;
      }
      // A failed link rejected everything it held: nothing of it can be unacknowledged again.
      if (link.failure && link !== this.#newest()) this.#links.delete(link);
    }
    if (oldestAt === undefined) return { bytes: 0, seconds: 0 };
    return { bytes, seconds: Math.max(0, (this.now() - oldestAt) / 1000) };
  }

  #newest(): LinkClient | undefined {
    let last: LinkClient | undefined;
    for (const link of this.#links) last = link;
    return last;
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
  return (opts) => {
    const link = new LinkClient({ ...opts, observeAck: (s) => latency.backupAck.observe(s) });
    unacked.add(link);
    return link;
  };
}
