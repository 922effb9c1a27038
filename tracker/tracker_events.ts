/**
 * What the tracker tells as events (src/events.ts): a volume registered for the first time, its
 * lease taken by another agent instance (a restart, an expiry, a takeover), and a volume turning
 * dirty (its first mark after it was clean) or clean (its last region cleared, after a resync).
 * Pure: the state façade decides when, this file says what.
 */
import type { EventInput } from "../src/events.ts";
import type { VolumeRecord } from "./kv_layout.ts";

/**
 * Every kind the tracker's `GET /v1/events` carries: its own, and `log` (src/events.ts `logLine`).
 * The dashboard's EventSource listens to each by name (tracker/dashboard/app.js `eventKinds`,
 * kept equal by tests/tracker_dashboard.test.ts).
 */
export const trackerEventKinds = [
  "volume.registered",
  "lease.taken",
  "lease.takeover",
  "volume.dirty",
  "volume.clean",
  "log",
] as const;
export type TrackerEventKind = typeof trackerEventKinds[number];

/** The event of a registration that changed who holds `record`'s volume, or undefined. */
export function registrationEvent(
  before: VolumeRecord | undefined,
  record: VolumeRecord,
  takeover: boolean,
): EventInput | undefined {
  const name = record.name;
  const owner = `host "${record.ownerHost}" (${record.ownerUrl})`;
  if (!before) {
    return {
      service: "tracker",
      kind: "volume.registered" satisfies TrackerEventKind,
      volume: name,
      message: `volume "${name}" registered by ${owner}, ${record.sizeBytes} bytes`,
      data: {
        ownerHost: record.ownerHost,
        ownerUrl: record.ownerUrl,
        sizeBytes: record.sizeBytes,
        regionBytes: record.regionBytes,
        leaseEpoch: record.leaseEpoch ?? 0,
      },
    };
  }
  if ((before.leaseEpoch ?? 0) === (record.leaseEpoch ?? 0)) return undefined;
  const from = `host "${before.ownerHost}" (instance ${before.ownerInstance ?? "unknown"})`;
  return {
    service: "tracker",
    level: takeover ? "warn" : "info",
    kind: (takeover ? "lease.takeover" : "lease.taken") satisfies TrackerEventKind,
    volume: name,
    message: `volume "${name}": lease ${takeover ? "taken over" : "taken"} by ${owner} from ` +
      `${from}, epoch ${record.leaseEpoch}`,
    data: {
      ownerHost: record.ownerHost,
      ownerInstance: record.ownerInstance ?? null,
      previousHost: before.ownerHost,
      previousInstance: before.ownerInstance ?? null,
      leaseEpoch: record.leaseEpoch ?? 0,
    },
  };
}

/** The event of a volume turning dirty or clean. */
export function dirtinessEvent(
  name: string,
  dirty: boolean,
  info: { dirtyRegions: number; dirtyBytes: number },
): EventInput {
  return {
    service: "tracker",
    level: dirty ? "warn" : "info",
    kind: (dirty ? "volume.dirty" : "volume.clean") satisfies TrackerEventKind,
    volume: name,
    message: dirty
      ? `volume "${name}" is dirty: ${info.dirtyRegions} region(s), ${info.dirtyBytes} bytes marked`
      : `volume "${name}" is clean: no region marked`,
    data: { dirtyRegions: info.dirtyRegions, dirtyBytes: info.dirtyBytes },
  };
}
