/**
 * The one wording of a fencing refusal, shared by the services that fence (tracker, backup) and
 * the host agent that must recognise it: a fenced agent stops acknowledging writes to that volume
 * for good, so the signal must not be confused with any other 409 (a link epoch that merely lost
 * a race with the same agent's newer connection, a size conflict).
 *
 * The refusal travels as an HTTP 409 body, or inside a link ERROR frame's message, so it is
 * recognised by its text: `Volume "NAME" is fenced: ...`.
 */
import { ServiceError } from "./errors.ts";

/** A 409 saying that `volume` now belongs to another lease; `why` names the holder if known. */
export function fencedError(volume: string, why: string): ServiceError {
  return new ServiceError(409, `Volume "${volume}" is fenced: ${why}`);
}

/** True when `err` (or its message) is a fencing refusal of `volume`. */
export function isFencedError(err: unknown, volume: string): boolean {
  const message = err instanceof Error
    ? err.message
    : String((err as { message?: unknown })?.message ?? err);
  return message.includes(`Volume "${volume}" is fenced: `);
}
