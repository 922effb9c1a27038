/**
 * How the operator commands (reconstruct, verify) show a job's progress: on a terminal one line
 * redrawn in place with a bar; otherwise (a log, a pipe) plain lines, at most one a second plus
 * the final one, so a long job does not flood the log. One unit system everywhere: IEC (KiB,
 * MiB/s), as `formatBytes` writes it.
 */
import { formatBytes } from "../../src/extent.ts";

/** What every job's progress carries (resync and verify alike). */
export interface ShownProgress {
  volume: string;
  state: string;
  regionsTotal: number;
  regionsDone: number;
  bytesTotal: number;
  bytesDone: number;
  bytesPerSec: number;
  etaSeconds: number | null;
  /** When the job started and ended, by the clock of whoever ran it (epoch ms). */
  startedAt: number | null;
  finishedAt: number | null;
}

/** Interval between plain progress lines. */
const plainLineIntervalMs = 1000;
const barWidth = 30;
const encoder = new TextEncoder();

/** A rate in IEC units: "55.2 MiB/s". */
export function rateText(bytesPerSec: number): string {
  return `${formatBytes(Math.round(bytesPerSec))}/s`;
}

/**
 * Seconds the jobs of `progresses` ran, by their own start and end times (as the host reported
 * them), not by the caller's clock: a caller that polls every 500 ms would otherwise count up to
 * a poll interval per job, and a fast copy would look slow.
 */
export function jobSeconds(progresses: (ShownProgress | undefined)[]): number {
  let ms = 0;
  for (const p of progresses) {
    if (p?.startedAt != null && p.finishedAt != null) ms += p.finishedAt - p.startedAt;
  }
  return ms / 1000;
}

/** Floor of the seconds a rate is divided by: the hosts' clocks count whole milliseconds. */
const rateSecondsMin = 0.001;

/** `bytes` over `seconds` as a rate, e.g. "55.2 MiB/s". */
export function averageRate(bytes: number, seconds: number): string {
  return rateText(bytes / Math.max(seconds, rateSecondsMin));
}

/** One progress line; `extra` follows the counts (e.g. ", 3 shipped (192 KiB)"). */
export function progressLine(p: ShownProgress, tty: boolean, extra = ""): string {
  const total = Math.max(p.bytesTotal, p.bytesDone);
  // A job that has just started does not know its size yet (0 of 0): that is 0%, not 100%.
  if (p.state === "running" && total === 0 && p.regionsTotal === 0) {
    return tty ? `${p.volume} [${"-".repeat(barWidth)}]   0% starting` : `${p.volume}: starting`;
  }
  const fraction = total > 0 ? p.bytesDone / total : p.state === "running" ? 0 : 1;
  const rate = rateText(p.bytesPerSec);
  const eta = p.etaSeconds === null ? "" : ` ETA ${p.etaSeconds}s`;
  const counts = `${p.regionsDone}/${Math.max(p.regionsTotal, p.regionsDone)} regions, ` +
    `${formatBytes(p.bytesDone)}/${formatBytes(total)}${extra}`;
  if (!tty) return `${p.volume}: ${p.state} ${counts} ${rate}${eta}`;
  const filled = Math.round(fraction * barWidth);
  const bar = "#".repeat(filled) + "-".repeat(barWidth - filled);
  return `${p.volume} [${bar}] ${(fraction * 100).toFixed(0).padStart(3)}% ${counts} ${rate}${eta}`;
}

/**
 * A function that shows progress as `lineOf` words it: redrawn in place on a terminal, plain lines
 * otherwise. `end()` finishes the terminal's line once a job is over.
 */
export function progressShower<P extends ShownProgress>(
  lineOf: (p: P, tty: boolean) => string,
): { show(p: P): void; end(): void } {
  const tty = Deno.stdout.isTerminal();
  let lastPlain = 0;
  return {
    show(p: P) {
      if (tty) {
        Deno.stdout.writeSync(encoder.encode(`\r\x1b[2K${lineOf(p, true)}`));
      } else if (Date.now() - lastPlain >= plainLineIntervalMs || p.state !== "running") {
        lastPlain = Date.now();
        console.log(lineOf(p, false));
      }
    },
    end() {
      if (tty) Deno.stdout.writeSync(encoder.encode("\n"));
    },
  };
}
