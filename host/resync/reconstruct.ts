/**
 * `deno task reconstruct`: reads the tracker's volumes, asks each owning host agent to resync its
 * dirty volumes, shows progress, and ends with a summary. Exits 1 with a clear message when a
 * volume could not be resynced (backup still offline, host agent unreachable).
 *
 *   deno task reconstruct [--tracker URL[,URL...]] [--volume NAME] [--token T | --token-file PATH] [--poll-ms N]
 *   deno task reconstruct --checksum [--volume NAME] [--discard-secondary]
 *     issue 9: a checksum resync of every volume (or NAME), needed when a volume's trust is
 *     "checksum-resync-needed" (a plain one is then refused, naming --checksum);
 *     --discard-secondary (with --volume) resolves a split brain by keeping the owner's primary.
 *   deno task reconstruct --host ID --backup URL --volume-path NAME=PATH ... [--force] [--checksum]
 *     for a host agent that will not come back: take over its volumes' leases, promote its
 *     activity marks to dirty marks, and resync from the primary images reachable here.
 *
 * `--checksum` (DRBD's csums-alg): for when the tracker's record cannot be trusted to cover every
 * difference. Every volume (dirty or not) is walked region by region: the SHA-256 of each primary
 * region is compared with the backup's digest of the secondary's, and only regions that differ
 * are shipped. The summary gives regions compared, shipped and skipped, and bytes shipped.
 */
import { formatBytes } from "../../src/extent.ts";
import { parseCommand, tokenFlagDocs, trackerListFlagDocs } from "../../src/command_help.ts";
import { failoverTargetsMax } from "../../src/failover.ts";
import { parseCountBetween, parseUrl, parseUrlList, runMain } from "../../src/flags.ts";
import { checkName, type VolumeInfo } from "../../src/schemas.ts";
import { resolveToken } from "../../src/token.ts";
import { TrackerClient } from "../../tracker/client.ts";
import { BackupClient } from "../../backup/client.ts";
import { HostClient } from "../client.ts";
import { resyncOrphan } from "./orphan_resync.ts";
import { followHostJob } from "./host_job.ts";
import { averageRate, jobSeconds, progressLine, progressShower } from "./progress_display.ts";
import type { ResyncMode, ResyncProgress, ResyncRequestBody } from "../../src/host_schemas.ts";

/**
 * Clean volumes (per the tracker) that may still differ, so they are asked to resync anyway:
 * those whose owner says they are not trusted (issue 9: a lost tracker record shows 0 dirty; the
 * owner refuses a plain resync, naming the command), and those whose owner has not yet promoted
 * its previous run's activity marks (the tracker's record is incomplete until it has; the owner
 * refuses, saying so), and those with a cycle still open at the backup since its return (issue
 * 10: the tracker could not say whether they were dirty, so their writes are staged until a
 * resync commits). An owner that does not answer is skipped (its clean volumes stay as before).
 */
async function untrustedVolumes(
  clean: VolumeInfo[],
  token: string | undefined,
): Promise<VolumeInfo[]> {
  const owners = new Map<string, VolumeInfo[]>();
  for (const v of clean) owners.set(v.ownerUrl, [...(owners.get(v.ownerUrl) ?? []), v]);
  const found: VolumeInfo[] = [];
  for (const [url, vols] of owners) {
    try {
      const status = await new HostClient(url, { token }).status();
      const untrusted = new Set(
        status.volumes.filter((v) => v.trust !== "trusted" || !v.promoted || v.stageOpen)
          .map((v) => v.name),
      );
      found.push(...vols.filter((v) => untrusted.has(v.name)));
    } catch {
      // unreachable owner: nothing to say about its clean volumes
    }
  }
  return found;
}

interface VolumeResult {
  volume: string;
  ok: boolean;
  progress?: ResyncProgress;
  error?: string;
}

/** Resyncs one volume through its owner; resolves with the final progress. */
async function resyncVolume(
  info: VolumeInfo,
  mode: ResyncMode,
  token: string | undefined,
  pollMs: number,
  show: (p: ResyncProgress) => void,
  req?: ResyncRequestBody,
): Promise<VolumeResult> {
  const host = new HostClient(info.ownerUrl, { token });
  const result = await followHostJob(
    info,
    {
      start: () => host.startResync(info.name, req),
      poll: () => host.resyncProgress(info.name),
    },
    pollMs,
    show,
    (first) =>
      mode === "checksum" && first.mode !== "checksum"
        ? `host agent "${info.ownerHost}" at ${info.ownerUrl} started a plain resync, not a ` +
          `checksum one: it predates --checksum; upgrade it`
        : undefined,
  );
  return { ...result, ok: result.error === undefined };
}

/** A resync's progress line: a checksum resync also says what it shipped. */
function resyncLine(p: ResyncProgress, tty: boolean): string {
  const shipped = p.mode === "checksum"
    ? `, ${p.regionsShipped ?? 0} shipped (${formatBytes(p.bytesShipped ?? 0)})`
    : "";
  return progressLine(p, tty, shipped);
}

/**
 * Time and rate of the summary: the jobs' own time (from the start and end times their hosts
 * reported) and the rate over it, then the command's wall time, which also counts polling.
 */
function timeText(results: VolumeResult[], bytes: number, wallSeconds: number, what: string) {
  const seconds = jobSeconds(results.map((r) => r.progress));
  return `in ${seconds.toFixed(2)} s (${averageRate(bytes, seconds)} ${what}), ` +
    `${wallSeconds.toFixed(2)} s in all`;
}

/** The last line of `--checksum`: what was compared, shipped and skipped. */
function checksumSummary(results: VolumeResult[], failed: number, wallSeconds: number): string {
  const sum = (f: (p: ResyncProgress) => number | undefined) =>
    results.reduce((n, r) => n + (r.progress ? f(r.progress) ?? 0 : 0), 0);
  const compared = sum((p) => p.regionsCompared);
  const bytesCompared = sum((p) => p.bytesDone);
  const shipped = sum((p) => p.bytesShipped);
  return `reconstruct: ${results.length - failed}/${results.length} volume(s) resynced by ` +
    `checksum, ${compared} regions compared, ${sum((p) => p.regionsShipped)} shipped, ` +
    `${sum((p) => p.regionsSkipped)} skipped, ${shipped} bytes shipped ` +
    `(${formatBytes(shipped)}) ${timeText(results, bytesCompared, wallSeconds, "compared")}`;
}

/** Default of --poll-ms: how often the owner's progress is read. */
const pollMsDefault = 500;
/** Bounds of --poll-ms: 0 would poll the owner in a busy loop. */
const pollMsMin = 10;
const pollMsMax = 60_000;

/** reconstruct's flags, parsed and documented from this one table. */
const reconstructCommand = {
  usage: "deno task reconstruct [flags]\n" +
    "       deno task reconstruct --host ID --backup URL --volume-path NAME=PATH ... [flags]",
  about: "Asks the owner of each dirty volume (per the tracker) to resync it to the backup, " +
    "shows the progress and ends with a summary; exit 1 when a volume could not be resynced. " +
    "With --host, takes over the volumes of a host agent that will not come back and resyncs " +
    "them from their primary images reachable here.",
  flags: {
    ...trackerListFlagDocs,
    volume: { type: "string", value: "NAME", doc: "only this volume (default: every dirty one)" },
    ...tokenFlagDocs,
    "poll-ms": {
      type: "string",
      value: "N",
      doc: `milliseconds between reads of a job's progress, ${pollMsMin} .. ${pollMsMax}`,
      fallback: `${pollMsDefault}`,
    },
    checksum: {
      type: "boolean",
      doc: "compare every region by SHA-256 with the backup's and ship only those that differ " +
        "(the repair of a volume whose trust is checksum-resync-needed)",
    },
    "discard-secondary": {
      type: "boolean",
      doc: "with --checksum --volume NAME: resolve a split brain by keeping the owner's primary",
    },
    host: {
      type: "string",
      value: "ID",
      doc: "a dead host agent whose volumes are taken over and resynced from here",
    },
    backup: {
      type: "string",
      value: "URL",
      doc: "the backup (with --host)",
      fallback: "http://127.0.0.1:8702",
    },
    "volume-path": {
      type: "string",
      multiple: true,
      value: "NAME=PATH",
      doc: "with --host: where the dead host's primary image of NAME is reachable here",
    },
    as: {
      type: "string",
      value: "ID",
      doc: "with --host: the host id the takeover registers as",
      fallback: "reconstruct",
    },
    force: {
      type: "boolean",
      doc: "with --host: take over even while the dead host's lease still runs",
    },
  },
  notes: "Output: progress (a redrawn line on a terminal, plain lines otherwise), then a " +
    "summary: bytes copied, the copy's own time and rate (MiB/s, from the start and end times " +
    "the hosts report), and the command's time in all.",
} as const;

async function main(): Promise<void> {
  const flags = parseCommand(Deno.args, reconstructCommand);
  const checksum = flags.checksum ?? false;
  const discardSecondary = flags["discard-secondary"] ?? false;
  if (discardSecondary && (!checksum || flags.volume === undefined)) {
    throw new RangeError(
      `--discard-secondary needs --checksum and --volume NAME (it discards one volume's ` +
        `secondary-only writes): deno task reconstruct --volume NAME --checksum --discard-secondary`,
    );
  }
  if (discardSecondary && flags.host !== undefined) {
    throw new RangeError(
      `--discard-secondary with --host "${flags.host}" is not supported: a dead host's ` +
        `primary is resynced by reconstruct itself (--checksum alone compares every region)`,
    );
  }
  const mode: ResyncMode = checksum ? "checksum" : "plain";
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
  const tracker = new TrackerClient(trackerUrls, { token });

  let volumes: VolumeInfo[];
  try {
    volumes = flags.volume
      ? [await tracker.getVolume(checkName("Volume", flags.volume))]
      : await tracker.listVolumes();
  } catch (err) {
    if (err instanceof RangeError) throw err;
    throw new Error(
      `Cannot read the tracker at ${trackerUrls.join(",")}: ${(err as Error).message}`,
    );
  }
  const deadHost = flags.host === undefined ? undefined : checkName("Host", flags.host);
  const paths = new Map<string, string>();
  for (const spec of flags["volume-path"] ?? []) {
    const eq = spec.indexOf("=");
    if (eq <= 0 || eq === spec.length - 1) {
      throw new RangeError(`--volume-path "${spec}" must look like NAME=PATH`);
    }
    paths.set(checkName("Volume", spec.slice(0, eq)), spec.slice(eq + 1));
  }
  if (deadHost !== undefined) {
    volumes = volumes.filter((v) => v.ownerHost === deadHost);
    if (volumes.length === 0) {
      throw new RangeError(`Host "${deadHost}" owns no volume at ${tracker.baseUrl}`);
    }
    const missing = volumes.filter((v) => !paths.has(v.name)).map((v) => v.name);
    if (missing.length > 0) {
      throw new RangeError(
        `--host ${deadHost} needs --volume-path NAME=PATH for ${
          missing.map((m) => `"${m}"`).join(", ")
        }`,
      );
    }
  }
  // A dead host's volumes are all taken over: its activity marks may make a clean one dirty. A
  // checksum resync considers every region, so every volume asked for takes part.
  const dirty = deadHost !== undefined || checksum
    ? volumes
    : volumes.filter((v) => v.dirtyRegions > 0);
  const untrusted = deadHost === undefined && !checksum
    ? await untrustedVolumes(volumes.filter((v) => v.dirtyRegions === 0), token)
    : [];
  console.log(
    `reconstruct: ${volumes.length} volume(s) at ${tracker.baseUrl}, ${dirty.length} dirty ` +
      `(${formatBytes(dirty.reduce((n, v) => n + v.dirtyBytes, 0))} marked)` +
      (checksum ? ", checksum resync of each" : "") +
      (untrusted.length > 0
        ? `, ${untrusted.length} clean but not trusted, not yet promoted, or with a cycle open at the backup (their owner says)`
        : ""),
  );
  dirty.push(...untrusted);

  const shower = progressShower(resyncLine);
  const show = shower.show;

  const started = performance.now();
  const results: VolumeResult[] = [];
  const backup = new BackupClient(parseUrl("backup", flags.backup, "http://127.0.0.1:8702"), {
    token,
  });
  const asHost = checkName("Host", flags.as ?? "reconstruct");
  for (const info of dirty) {
    const result = deadHost === undefined
      ? await resyncVolume(
        info,
        mode,
        token,
        pollMs,
        show,
        checksum
          ? { mode: "checksum", ...(discardSecondary ? { discardSecondary } : {}) }
          : undefined,
      )
      : await resyncOrphan(info, {
        tracker,
        backup,
        asHost,
        primaryPath: paths.get(info.name)!,
        force: flags.force ?? false,
        mode,
        show,
      }).then(
        (progress): VolumeResult => ({
          volume: info.name,
          ok: progress.state === "done",
          progress,
          error: progress.error ?? undefined,
        }),
        (err): VolumeResult => ({ volume: info.name, ok: false, error: (err as Error).message }),
      );
    shower.end();
    if (!result.ok) console.error(`reconstruct: volume "${info.name}" failed: ${result.error}`);
    results.push(result);
  }
  const seconds = (performance.now() - started) / 1000;
  const bytes = results.reduce((n, r) => n + (r.progress?.bytesDone ?? 0), 0);
  const regions = results.reduce((n, r) => n + (r.progress?.regionsDone ?? 0), 0);
  const failed = results.filter((r) => !r.ok);
  if (mode === "checksum") {
    console.log(checksumSummary(results, failed.length, seconds));
  } else {
    console.log(
      `reconstruct: ${results.length - failed.length}/${results.length} volume(s) resynced, ` +
        `${regions} regions, ${bytes} bytes copied (${formatBytes(bytes)}) ` +
        timeText(results, bytes, seconds, "copied"),
    );
  }
  if (failed.length > 0) {
    throw new Error(
      `${failed.length} volume(s) not resynced: ${failed.map((f) => f.volume).join(", ")}`,
    );
  }
}

if (import.meta.main) await runMain(main);
