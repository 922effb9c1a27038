/**
 * Volume registration: what a registration request leads to, or why it is refused.
 * The geometry of a volume never changes once registered; the owner's lease is renewed by the
 * owner, or taken by another host once it expired (or at once with `takeover`).
 */
import { badRequest, conflict } from "../src/errors.ts";
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
  if (!existing) {
    return {
      name,
      sizeBytes: reg.sizeBytes,
      regionBytes: reg.regionBytes,
      ownerHost: reg.ownerHost,
      ownerUrl: reg.ownerUrl,
      leaseExpiresAt,
      registeredAt: now,
      generation: newGeneration(),
    };
  }
  if (existing.sizeBytes !== reg.sizeBytes || existing.regionBytes !== reg.regionBytes) {
    throw conflict(
      `Volume "${name}" is registered with ${existing.sizeBytes} bytes in regions of ` +
        `${existing.regionBytes}, not ${reg.sizeBytes} in regions of ${reg.regionBytes}`,
    );
  }
  if (existing.ownerHost !== reg.ownerHost && existing.leaseExpiresAt > now && !reg.takeover) {
    throw conflict(
      `Volume "${name}" is leased to host "${existing.ownerHost}" until ` +
        `${
          new Date(existing.leaseExpiresAt).toISOString()
        }; host "${reg.ownerHost}" needs takeover`,
    );
  }
  return { ...existing, ownerHost: reg.ownerHost, ownerUrl: reg.ownerUrl, leaseExpiresAt };
}
