/**
 * `deno task verify`: online verify (DRBD's verify-alg) of every volume the tracker knows, or of
 * one. Like reconstruct, it reads the tracker's volumes and asks each owning host agent to do the
 * work (`POST /v1/volumes/{name}/verify`), showing its progress; the agent compares every region
 * of the primary with the secondary by SHA-256 while writes continue (host/resync/online_verify.ts)
 * and marks the regions that differ dirty at the tracker, so the next `deno task reconstruct`
 * repairs them. Nothing is shipped.
 *
 *   deno task verify [--volume NAME] [--tracker URL[,URL...]] [--token T | --token-file PATH]
 *                    [--poll-ms N] [--extents-max N]
 *
 * Output: progress (a redrawn line on a terminal, plain lines otherwise), then per differing
 * volume its differing extents (at most --extents-max, then "…and K more"), then a summary line:
 * volumes, regions compared, differing, extents, bytes differing, seconds.
 *
 * Exit codes: 0 every volume verified equal; 1 differences found (listed, and marked at the
 * tracker); 2 bad flags; 3 no difference found but the tracker could not be read or some volume
 * could not be verified (host agent unreachable, backup offline, a resync of it running, split
 * brain).
 */
import { formatBytes } from "../../src/extent.ts";
import { parseCommand, tokenFlagDocs, trackerListFlagDocs } from "../../src/command_help.ts";
import { failoverTargetsMax } from "../../src/failover.ts";
import { parseCount, parseCountBetween, parseUrlList, runMain } from "../../src/flags.ts";
import type { VerifyProgress } from "../../src/host_schemas.ts";
import { checkName, type VolumeInfo } from "../../src/schemas.ts";
import { resolveToken } from "../../src/token.ts";
import { TrackerClient } from "../../tracker/client.ts";
import { HostClient } from "../client.ts";
import { followHostJob, type JobResult } from "./host_job.ts";
import { averageRate, jobSeconds, progressLine, progressShower } from "./progress_display.ts";

/** Exit code when differences were found. */
export const verifyExitDiffering = 1;
/** Exit code when no difference was found but some volume could not be verified. */
export const verifyExitIncomplete = 3;
/** Default of --extents-max: differing extents listed per volume. */
const extentsListedDefault = 20;

function verifyLine(p: VerifyProgress, tty: boolean): string {
  return progressLine(p, tty, `, ${p.regionsDiffering} differing`);
}

/** The differing extents of a volume, at most `listedMax`, then how many more there are. */
function differenceLines(p: VerifyProgress, listedMax: number): string[] {
  const lines = [
    `verify: volume "${p.volume}" differs in ${p.regionsDiffering} region(s), ` +
    `${p.extentsTotal} extent(s), ${p.bytesDiffering} bytes (${formatBytes(p.bytesDiffering)}); ` +
    `marked dirty at the tracker, run deno task reconstruct to repair`,
  ];
  const listed = p.extents.slice(0, listedMax);
  for (const e of listed) {
    lines.push(`  ${e.offset}+${e.length} (${formatBytes(e.offset)}, ${formatBytes(e.length)})`);
  }
  const more = p.extentsTotal - listed.length;
  if (more > 0) lines.push(`  …and ${more} more`);
  return lines;
}

/** Default of --poll-ms: how often the owner's progress is read. */
const pollMsDefault = 500;
/** Bounds of --poll-ms: 0 would poll the owner in a busy loop. */
const pollMsMin = 10;
const pollMsMax = 60_000;

/** verify's flags, parsed and documented from this one table. */
const verifyCommand = {
  usage: "deno task verify [flags]",
  about: "Online verify: asks the owner of every volume (or one) to compare each region of the " +
    "primary with the secondary by SHA-256 while writes continue; differing regions are marked " +
    "dirty at the tracker for the next deno task reconstruct. Nothing is shipped.",
  flags: {
    ...trackerListFlagDocs,
    volume: { type: "string", value: "NAME", doc: "only this volume (default: every volume)" },
    ...tokenFlagDocs,
    "poll-ms": {
      type: "string",
      value: "N",
      doc: `milliseconds between reads of a job's progress, ${pollMsMin} .. ${pollMsMax}`,
      fallback: `${pollMsDefault}`,
    },
    "extents-max": {
      type: "string",
      value: "N",
      doc: 'differing extents listed per volume, a whole number (then "…and K more")',
      fallback: `${extentsListedDefault}`,
    },
  },
  notes: `Exit codes: 0 every volume verified equal; ${verifyExitDiffering} differences found ` +
    `(listed, and marked at the tracker); 2 bad flags; ${verifyExitIncomplete} no difference ` +
    "found but the tracker could not be read or some volume could not be verified.",
} as const;

/** Runs the verify; returns the exit code (flag errors throw RangeError: exit 2). */
async function main(): Promise<number> {
  const flags = parseCommand(Deno.args, verifyCommand);
  const trackerUrls = parseUrlList(
    "tracker",
    flags.tracker,
    "http://127.0.0.1:8701",
    failoverTargetsMax,
  );
  const token = resolveToken(flags);
  const pollMs = parseCountBetween(
    "poll-ms",
    flags["poll-ms"],
    pollMsDefault,
    pollMsMin,
    pollMsMax,
  );
  const listedMax = parseCount("extents-max", flags["extents-max"], extentsListedDefault);
  const tracker = new TrackerClient(trackerUrls, { token });

  let volumes: VolumeInfo[];
  try {
    volumes = flags.volume
      ? [await tracker.getVolume(checkName("Volume", flags.volume))]
      : await tracker.listVolumes();
  } catch (err) {
    if (err instanceof RangeError) throw err;
    console.error(
      `Error: Cannot read the tracker at ${trackerUrls.join(",")}: ${(err as Error).message}`,
    );
    return verifyExitIncomplete;
  }
  console.log(`verify: ${volumes.length} volume(s) at ${tracker.baseUrl}`);

  const shower = progressShower(verifyLine);
  const started = performance.now();
  const results: JobResult<VerifyProgress>[] = [];
  for (const info of volumes) {
    const host = new HostClient(info.ownerUrl, { token });
    const result = await followHostJob(
      info,
      {
        start: () => host.startVerify(info.name),
        poll: () => host.verifyProgress(info.name),
      },
      pollMs,
      shower.show,
    );
    shower.end();
    if (result.error !== undefined) {
      console.error(`verify: volume "${info.name}" not verified: ${result.error}`);
    }
    results.push(result);
  }
  const seconds = (performance.now() - started) / 1000;
  const verified = results.filter((r) => r.error === undefined).map((r) => r.progress!);
  const differing = verified.filter((p) => p.regionsDiffering > 0);
  for (const p of differing) for (const line of differenceLines(p, listedMax)) console.log(line);
  const sum = (f: (p: VerifyProgress) => number) => verified.reduce((n, p) => n + f(p), 0);
  const bytesCompared = sum((p) => p.bytesDone);
  // The rate is over the verifies' own time, as their hosts report it, not the polling loop's.
  const verifySeconds = jobSeconds(verified);
  console.log(
    `verify: ${verified.length}/${results.length} volume(s) verified, ` +
      `${sum((p) => p.regionsCompared)} regions compared, ` +
      `${sum((p) => p.regionsDiffering)} differing, ${sum((p) => p.extentsTotal)} extent(s), ` +
      `${sum((p) => p.bytesDiffering)} bytes differing, in ${verifySeconds.toFixed(2)} s ` +
      `(${averageRate(bytesCompared, verifySeconds)} compared), ${seconds.toFixed(2)} s in all`,
  );
  if (differing.length > 0) return verifyExitDiffering;
  return verified.length < results.length ? verifyExitIncomplete : 0;
}

if (import.meta.main) {
  await runMain(async () => {
    const code = await main();
    if (code !== 0) Deno.exit(code);
  });
}
