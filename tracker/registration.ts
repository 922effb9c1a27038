/**
 * Volume registration: what a registration request leads to, or why it is refused.
 * The geometry of a volume never changes once registered; the owner's lease is renewed by the
 * owner, or taken by another host once it expired (or at once with `takeover`).
 *
 * The owner is an agent *instance* (a random id per process), not only a host id: two agents
 * started with the same (default) host id are two owners, and the second is refused while the
 * first one's lease runs. The one exception is a restart of the same agent — same host id, same
 * primary (`ownerPrimary`, "HOSTNAME:/real/path"; the agent holds an exclusive lock on that file,
 * so no two live agents on one machine can claim it) — which must come back at once after a
 * SIGKILL. Every change of owning instance raises the lease epoch by one; the tracker and the
 * backup refuse what an older epoch sends (tracker/lease_fence.ts, backup/epoch_fence.ts).
 */
import { badRequest, conflict } from "../src/errors.ts";
import { leaseEpochStepMax } from "../src/limits.ts";
import type { volumeRegistration } from "../src/schemas.ts";
import type { z } from "zod";
import type { VolumeRecord } from "./kv_layout.ts";

/** Most regions one volume may have (2^28: 16 TiB at 64 KiB regions). */
export const regionsPerVolumeMax = 2 ** 28;

/** A registration as validated by the schema (defaults applied). */
export type Registration = z.output<typeof volumeRegistration>;

/**
 * The record a registration leads to, or a 409: the geometry of a volume never changes, and a
 * host may take over another host's unexpired lease only with `takeover`.
 */
export function decideRegistration(
  existing: VolumeRecord | undefined,
  name: string,
  reg: Registration,
  now: number,
  newGeneration: () => string = () => crypto.randomUUID(),
): VolumeRecord {
  const regions = Math.ceil(reg.sizeBytes / reg.regionBytes);
  if (regions > regionsPerVolumeMax) {
    throw badRequest(
      `Volume "${name}" of ${reg.sizeBytes} bytes has ${regions} regions of ${reg.regionBytes} ` +
        `bytes; at most ${regionsPerVolumeMax} are tracked (use larger regions)`,
    );
  }
  const leaseExpiresAt = now + reg.leaseMs;
  const known = existing?.leaseEpoch ?? 0;
  const claimed = reg.leaseEpoch ?? 0;
  if (claimed > known + leaseEpochStepMax) {
    throw badRequest(
      `Volume "${name}" lease epoch ${claimed} is more than leaseEpochStepMax ` +
        `${leaseEpochStepMax} above the tracker's ${known}`,
    );
  }
  const owner = {
    ownerHost: reg.ownerHost,
    ownerUrl: reg.ownerUrl,
    leaseExpiresAt,
    ownerInstance: reg.ownerInstance,
    ownerPrimary: reg.ownerPrimary,
  };
  if (!existing) {
    return {
      name,
      sizeBytes: reg.sizeBytes,
      regionBytes: reg.regionBytes,
      ...owner,
      registeredAt: now,
      generation: newGeneration(),
      leaseEpoch: Math.max(1, claimed),
    };
  }
  if (existing.sizeBytes !== reg.sizeBytes || existing.regionBytes !== reg.regionBytes) {
    throw conflict(
      `Volume "${name}" is registered with ${existing.sizeBytes} bytes in regions of ` +
        `${existing.regionBytes}, not ${reg.sizeBytes} in regions of ${reg.regionBytes}`,
    );
  }
  const live = existing.leaseExpiresAt > now;
  if (live && !reg.takeover && !isSameHolder(existing, reg) && !isRestart(existing, reg)) {
    throw conflict(
      `Volume "${name}" is leased to host "${existing.ownerHost}" (instance ` +
        `${existing.ownerInstance ?? "unknown"}, ${existing.ownerUrl}) until ` +
        `${new Date(existing.leaseExpiresAt).toISOString()}; host "${reg.ownerHost}" (instance ` +
        `${reg.ownerInstance ?? "unknown"}) needs takeover`,
    );
  }
  const changed = existing.ownerInstance !== reg.ownerInstance ||
    existing.ownerHost !== reg.ownerHost;
  const leaseEpoch = Math.max(1, Math.max(known, claimed) + (changed ? 1 : 0));
  return { ...existing, ...owner, leaseEpoch };
}

/**
 * Whether `reg` comes from the holder of the lease: the same instance, or — for a record an older
 * tool wrote without one — the same host id.
 */
function isSameHolder(existing: VolumeRecord, reg: Registration): boolean {
  if (existing.ownerInstance === undefined) return existing.ownerHost === reg.ownerHost;
  return existing.ownerInstance === reg.ownerInstance;
}

/** A new instance of the same agent: same host id, same primary (which it holds locked). */
function isRestart(existing: VolumeRecord, reg: Registration): boolean {
  return reg.ownerInstance !== undefined && reg.ownerHost === existing.ownerHost &&
    reg.ownerPrimary !== undefined && reg.ownerPrimary === existing.ownerPrimary;
}
