/**
 * ISO 8601 times beside epoch milliseconds in status documents (issue 11): people and `jq` read
 * `2026-11-24T20:41:07.123Z`, scripts keep computing with the ms field next to it.
 */

/** `ms` (epoch milliseconds) as an ISO 8601 UTC string; null stays null. */
export function isoTime(ms: number): string;
export function isoTime(ms: number | null): string | null;
export function isoTime(ms: number | null): string | null {
  return ms === null || !Number.isFinite(ms) ? null : new Date(ms).toISOString();
}
