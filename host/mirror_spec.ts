/**
 * The host agent's mirror-mode flags (issue 10): `--mirror journal|cycles` (every volume) and
 * `--mirror NAME=journal|cycles` (one volume), repeatable; `--cycle-interval DURATION`.
 */
import { type MirrorMode, mirrorMode } from "../src/host_schemas.ts";
import {
  cycleIntervalMsDefault,
  cycleIntervalMsMax,
  cycleIntervalMsMin,
} from "./cycle/cycle_mirror.ts";

/**
 * Each volume's mirror mode from the `--mirror` values: a bare mode sets the default (journal
 * when none), `NAME=MODE` one volume. A bad mode, a name not given with --volume, or a name or
 * the default given twice is refused, naming the flag and the value.
 */
export function parseMirrorFlags(
  values: readonly string[] | undefined,
  volumeNames: readonly string[],
): Map<string, MirrorMode> {
  let fallback: MirrorMode | undefined;
  const perVolume = new Map<string, MirrorMode>();
  for (const value of values ?? []) {
    const eq = value.indexOf("=");
    const name = eq < 0 ? undefined : value.slice(0, eq);
    const mode = parseMode(value, eq < 0 ? value : value.slice(eq + 1));
    if (name === undefined) {
      if (fallback !== undefined) {
        throw new RangeError(`--mirror "${value}": the mode of every volume is given twice`);
      }
      fallback = mode;
      continue;
    }
    if (!volumeNames.includes(name)) {
      throw new RangeError(
        `--mirror "${value}": no volume "${name}" is given with --volume ` +
          `(volumes: ${volumeNames.join(", ") || "none"})`,
      );
    }
    if (perVolume.has(name)) {
      throw new RangeError(`--mirror "${value}": the mode of volume "${name}" is given twice`);
    }
    perVolume.set(name, mode);
  }
  return new Map(volumeNames.map((n) => [n, perVolume.get(n) ?? fallback ?? "journal"]));
}

function parseMode(flagValue: string, text: string): MirrorMode {
  const parsed = mirrorMode.safeParse(text);
  if (!parsed.success) {
    throw new RangeError(
      `--mirror "${flagValue}": mode "${text}" must be journal or cycles (or NAME=journal|cycles)`,
    );
  }
  return parsed.data;
}

const unitMs: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * `--cycle-interval`: a whole number with a unit (`500ms`, `30s`, `2m`, `1h`), from 100 ms to one
 * day; default 30 s.
 */
export function parseCycleInterval(text: string | undefined): number {
  if (text === undefined) return cycleIntervalMsDefault;
  const m = /^(\d{1,9})(ms|s|m|h)$/.exec(text);
  const ms = m ? Number(m[1]) * unitMs[m[2]] : NaN;
  if (!m || ms < cycleIntervalMsMin || ms > cycleIntervalMsMax) {
    throw new RangeError(
      `--cycle-interval "${text}" must be a duration such as 500ms, 30s, 2m or 1h, from ` +
        `${cycleIntervalMsMin}ms to 24h`,
    );
  }
  return ms;
}
