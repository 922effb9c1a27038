/**
 * The tracker's half of fencing: a host agent that lost its volume (another instance took it
 * over, or its own lease epoch is older than the record's) must not change the volume's tracking
 * state any more. Its marks would be harmless for the invariant (a mark is a superset), but the
 * agent would then acknowledge writes to a primary that is no longer the volume's: the 409
 * "fenced" is how it learns to stop (host/fork/lease_guard.ts).
 *
 * A request without a claim (older tools, tests, reconstruct) is not checked.
 */
import { fencedError } from "../src/fencing.ts";
import type { VolumeRecord } from "./kv_layout.ts";

/** What a host claims with a tracking-state change (src/schemas.ts `leaseClaim`). */
export interface LeaseClaim {
  instance?: string;
  leaseEpoch?: number;
}

/** Throws 409 "fenced" when `claim` is not the current lease of the volume `record` describes. */
export function checkLeaseClaim(record: VolumeRecord, claim: LeaseClaim | undefined): void {
  if (!claim) return;
  const { instance, leaseEpoch } = claim;
  const current = record.leaseEpoch ?? 0;
  const holder = `host "${record.ownerHost}" (instance ${record.ownerInstance ?? "unknown"}, ` +
    `${record.ownerUrl}) holds it with lease epoch ${current}`;
  if (leaseEpoch !== undefined && leaseEpoch < current) {
    throw fencedError(record.name, `lease epoch ${leaseEpoch} is older than ${current}; ${holder}`);
  }
  if (instance !== undefined && instance !== record.ownerInstance) {
    throw fencedError(record.name, `instance ${instance} does not hold the lease; ${holder}`);
  }
}
