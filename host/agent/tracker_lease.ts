/**
 * The host's lease on its volumes at the tracker: registers them, renews every `leaseMs / 3`,
 * promotes the previous run's activity marks to dirty marks (enabling retirement after), and
 * remembers the tracker's last error for the status document.
 *
 * Each registration names this process (`ownerInstance`) and its primary (`ownerPrimary`) and
 * hands the granted lease epoch to the volume's LeaseGuard. A renewal the tracker refuses with
 * 409 means another instance holds the volume now: the volume is fenced, and never renewed again
 * (a renewal after the new owner's lease ran out would take the volume back behind its back).
 */
import type { HostVolume } from "./volume_stack.ts";
import type { HostTracker } from "./ports.ts";
import { emit, logLine } from "../../src/events.ts";

/** Lease a host holds on its volumes unless told otherwise. */
export const leaseMsDefault = 30_000;

export interface TrackerLeaseOptions {
  tracker: HostTracker;
  hostId: string;
  /** This agent process's lease identity. */
  instance: string;
  /** URL where reconstruct reaches this agent's HTTP API. */
  advertiseUrl: string;
  regionBytes: number;
  leaseMs?: number;
  /** Take volume leases held by another host (at start-up only). */
  takeover?: boolean;
}

export class TrackerLease {
  readonly #registered = new Set<string>();
  #trackerError: string | null = null;
  #timer: ReturnType<typeof setInterval> | undefined;
  #renewing: Promise<void> | undefined;

  /** `volumes` is the agent's volume map; the lease reads it at every renewal. */
  constructor(
    private readonly opts: TrackerLeaseOptions,
    private readonly volumes: ReadonlyMap<string, HostVolume>,
  ) {}

  /** The tracker's last error, null after a success. */
  get trackerError(): string | null {
    return this.#trackerError;
  }

  isRegistered(name: string): boolean {
    return this.#registered.has(name);
  }

  /** Registers every volume (a 4xx refusal is fatal), then renews every `leaseMs / 3`. */
  async start(): Promise<void> {
    await this.#register(true);
    const leaseMs = this.opts.leaseMs ?? leaseMsDefault;
    this.#timer = setInterval(() => void this.#register(false), leaseMs / 3);
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  /**
   * Renews every volume now, joining a renewal already asked for: the tracker answered that it
   * does not know a volume (it lost its record), so the registration and its generation check
   * should not wait for the timer (issue 9). `lost` names the volume it no longer knows: the
   * status shows it unregistered until a registration succeeds.
   */
  renewNow(lost?: string): Promise<void> {
    if (lost !== undefined) this.#registered.delete(lost);
    this.#renewing ??= this.#register(false).finally(() => this.#renewing = undefined);
    return this.#renewing;
  }

  /** Registers (or renews the lease of) every volume; at start-up a refusal is fatal. */
  async #register(startup: boolean): Promise<void> {
    const { opts } = this;
    for (const v of this.volumes.values()) {
      if (v.lease.fenced) continue;
      try {
        const seen = v.trust.snapshot();
        const info = await opts.tracker.registerVolume(v.name, {
          sizeBytes: v.sizeBytes,
          regionBytes: opts.regionBytes,
          ownerHost: opts.hostId,
          ownerUrl: opts.advertiseUrl,
          leaseMs: opts.leaseMs ?? leaseMsDefault,
          takeover: startup && (opts.takeover ?? false),
          ownerInstance: opts.instance,
          ownerPrimary: v.lease.primaryId,
          ...(v.lease.registrationClaim === undefined
            ? {}
            : { leaseEpoch: v.lease.registrationClaim }),
        });
        // Issue 9: a lost or older tracker record is noticed here, before anything relies on it.
        await v.trust.checkTracker(info, seen, true);
        v.lease.granted(info.leaseEpoch);
        if (!this.#registered.has(v.name)) {
          emit({
            service: "host",
            kind: "lease.taken",
            volume: v.name,
            message: `volume "${v.name}": lease taken at the tracker (epoch ${info.leaseEpoch})`,
            data: { leaseEpoch: info.leaseEpoch, takeover: startup && (opts.takeover ?? false) },
          });
        }
        this.#registered.add(v.name);
        if (!v.promoted) await this.#promote(v);
        this.#trackerError = null;
      } catch (err) {
        const status = (err as { status?: number }).status ?? 0;
        this.#trackerError = (err as Error).message;
        // 4xx: the tracker refuses this volume (size differs, lease held elsewhere): do not serve it.
        if (startup && status >= 400 && status < 500) {
          throw new RangeError(`Tracker refused volume "${v.name}": ${(err as Error).message}`);
        }
        // Refused after start-up: another instance holds the lease now (the geometry was
        // accepted at start, or the agent would not have started): fenced.
        if (status === 409) {
          v.lease.fence(`The tracker refused the lease renewal: ${(err as Error).message}`);
        }
        if (startup) {
          logLine(
            "host",
            "warn",
            `tracker unreachable, will retry: ${(err as Error).message}`,
          );
        }
      }
    }
  }

  /**
   * Turns the activity marks a previous incarnation of this host left (it may have died between a
   * backup acknowledgement and a primary write) into dirty marks, before this one retires any.
   */
  async #promote(v: HostVolume): Promise<void> {
    const { regionsPromoted } = await this.opts.tracker.promoteActivity(v.name, this.opts.hostId);
    v.promoted = true;
    if (v.activity) v.activity.retireEnabled = true;
    if (regionsPromoted > 0) {
      logLine(
        "host",
        "info",
        `volume "${v.name}": ${regionsPromoted} regions of activity from an earlier run ` +
          `are now dirty and will be resynced`,
      );
    }
  }
}
