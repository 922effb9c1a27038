/**
 * How the operator commands (reconstruct, verify) show a job's progress: on a terminal one line
 * redrawn in place with a bar; otherwise (a log, a pipe) plain lines, at most one a second plus
 * the final one, so a long job does not flood the log.
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
}

/** Interval between plain progress lines. */
const plainLineIntervalMs = 1000;
const barWidth = 30;
const encoder = new TextEncoder();

/** One progress line; `extra` follows the counts (e.g. ", 3 shipped (192 KiB)"). */
export function progressLine(p: ShownProgress, tty: boolean, extra = ""): string {
  const total = Math.max(p.bytesTotal, p.bytesDone);
  const fraction = total > 0 ? p.bytesDone / total : 1;
  const rate = `${formatBytes(p.bytesPerSec)}/s`;
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
