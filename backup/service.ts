/**
 * Opens a backup service on a data directory: the secondary volumes (`<data>/volumes`), the
 * journal (`<data>/journal`, replayed first), the background applier and the HTTP app
 * (backup/app.ts). The assembly of the service; main.ts only parses flags and serves it.
 */
import { join } from "node:path";
import type { FaultFile } from "../src/fault_file.ts";
import { backupBatchBytesMaxDefault } from "../src/limits.ts";
import { Metrics } from "../src/metrics.ts";
import { Applier } from "./applier.ts";
import { CycleStages } from "./cycle_stage.ts";
import { listSegments } from "./segment_files.ts";
import { Journal, journalSegmentBytesDefault } from "./journal.ts";
import { replayJournal } from "./journal_replay.ts";
import { type BackupApp, createBackupApp } from "./app.ts";
import { SecondaryStore } from "./secondary_store.ts";
import { volumeLagOf, type VolumeLagView } from "./volume_lag.ts";
import { EpochFence } from "./epoch_fence.ts";
import type { Clock } from "../src/clock.ts";
import { type LinkListenOptions, LinkServer } from "./link_server.ts";
import { logLine } from "../src/events.ts";

/** Default bound on pending journal bytes before appends get 503. */
export const journalBytesMaxDefault = 1024 * 1024 * 1024;

/** How to open a backup service; every bound has a default. */
export interface BackupOptions {
  /** Root of the backup's files. */
  dataDir: string;
  /** The clock link epochs are bounded by (epoch_fence.ts); the system clock by default. */
  clock?: Clock;
  journalBytesMax?: number;
  batchBytesMax?: number;
  journalSegmentBytes?: number;
  /** Start with the applier paused (a held-back backlog); resume with `applier.resume()`. */
  applierPaused?: boolean;
  /** Bearer token guarding every route but /healthz; the link's HELLO must carry it too. */
  token?: string;
  /** Where replay reports a torn tail; a warn log line by default. */
  log?: (message: string) => void;
  /** Where the host link listens (backup/link_server.ts); absent: no link, HTTP batches only. */
  link?: LinkListenOptions;
  /** Test-only disk faults for the journal and the applier (main.ts: TRACKMIRROR_FAULT_FILE). */
  faults?: FaultFile;
  /** Bound on one volume's cycle stage (backup/cycle_stage.ts; `stageBytesMaxDefault`). */
  stageBytesMax?: number;
}

/** An open backup service. */
export interface Backup {
  app: BackupApp;
  journal: Journal;
  applier: Applier;
  store: SecondaryStore;
  /** Open cycles and committed points of a consistent resync (issue 10). */
  stages: CycleStages;
  metrics: Metrics;
  /** Orders each volume's writers: batches of an older epoch are refused (epoch_fence.ts). */
  fence: EpochFence;
  /** The host link's listeners, when `opts.link` asked for them. */
  link: LinkServer | undefined;
  /** Refuses new batches, finishes the in-flight group, stops the applier, closes the files. */
  close(): Promise<void>;
}

/** Opens the backup in `opts.dataDir`: replays the journal, then starts the applier. */
export async function openBackup(opts: BackupOptions): Promise<Backup> {
  const journalBytesMax = opts.journalBytesMax ?? journalBytesMaxDefault;
  const batchBytesMax = opts.batchBytesMax ?? backupBatchBytesMaxDefault;
  const journalSegmentBytes = opts.journalSegmentBytes ?? journalSegmentBytesDefault;
  for (
    const [name, value] of Object.entries({ journalBytesMax, batchBytesMax, journalSegmentBytes })
  ) {
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new RangeError(`${name} ${value} must be a whole number of bytes >= 1`);
    }
  }
  const journalDir = join(opts.dataDir, "journal");
  await Deno.mkdir(journalDir, { recursive: true });
  const store = await SecondaryStore.open(join(opts.dataDir, "volumes"));
  const metrics = new Metrics();
  let journal: Journal;
  /** The host link's listeners; set once the journal is open (the journal asks it per group). */
  let link: LinkServer | undefined;
  let stages: CycleStages | undefined;
  try {
    // Committed stages are finished before replay: the journal may hold later records of theirs.
    stages = CycleStages.openSync(opts.dataDir, store, {
      stageBytesMax: opts.stageBytesMax,
      log: opts.log,
      journalLastSegment: (await listSegments(journalDir)).at(-1) ?? null,
    });
    const replayStages = stages;
    const touched = new Set<string>();
    const replayed = await replayJournal(
      journalDir,
      (rec, at, encoded) => replayStages.apply(rec, encoded, touched, at),
      opts.log,
    );
    // Journal.open removes replayed segments, so what replay wrote must be durable first.
    await store.syncAll();
    stages.syncSync();
    journal = await Journal.open(
      {
        dir: journalDir,
        journalBytesMax,
        journalSegmentBytes,
        metrics,
        faults: opts.faults,
        // Inline fdatasync while every host on the link waits for durability anyway (none
        // acknowledges on receipt); HTTP batches wait for it too.
        syncInline: () => link !== undefined && !link.receivedLinkOpen,
      },
      replayed,
    );
    if (replayed.records > 0) {
      (opts.log ?? ((m: string) => logLine("backup", "warn", m)))(
        `Backup: replayed ${replayed.records} records from ${replayed.replayedIds.length} journal segments`,
      );
    }
  } catch (err) {
    stages?.close();
    store.close();
    throw err;
  }
  const applier = new Applier(journal, store, {
    paused: opts.applierPaused,
    faults: opts.faults,
    stages,
  });
  applier.start();
  metrics.gauge(
    "trackmirror_backup_cycle_staged_bytes",
    "Record bytes staged by each volume's open resync cycle, not yet applied to its secondary",
    ["volume"],
    (set) => {
      for (const c of stages.openCycles()) set({ volume: c.volume }, c.stagedBytes);
    },
  );
  metrics.counter(
    "trackmirror_backup_cycles_committed_total",
    "Resync cycles committed (applied to the secondary as one point in time) since start",
    [],
    (set) => set({}, stages.commits),
  );
  metrics.gauge(
    "trackmirror_backup_journal_pending_bytes",
    "Journal bytes not yet applied to the secondaries",
    [],
    (set) => set({}, journal.pendingBytes),
  );
  metrics.gauge(
    "trackmirror_backup_journal_max_bytes",
    "Bound on pending journal bytes (--journal-bytes-max)",
    [],
    (set) => set({}, journalBytesMax),
  );
  metrics.gauge(
    "trackmirror_backup_degraded",
    "1 while the backup answers but cannot take writes (journal full, a journal write failed); " +
      "GET /v1/status says why",
    [],
    (set) => set({}, journal.degradedReason() === null ? 0 : 1),
  );
  metrics.counter(
    "trackmirror_backup_records_acknowledged_total",
    "Records acknowledged (journaled durably) since start",
    [],
    (set) => set({}, journal.recordsAcknowledged),
  );
  const lag = volumeLagOf(journal);
  const perVolumeLag = (name: string, help: string, value: (v: VolumeLagView) => number) =>
    metrics.gauge(name, help, ["volume"], (set) => {
      for (const { name } of store.list()) set({ volume: name }, value(lag.view(name)));
    });
  perVolumeLag(
    "trackmirror_backup_volume_lag_bytes",
    "Record bytes of the volume journaled (acknowledged) and not yet applied and synced to its " +
      "secondary",
    (v) => v.bytes,
  );
  perVolumeLag(
    "trackmirror_backup_volume_lag_records",
    "Records of the volume journaled and not yet applied and synced to its secondary",
    (v) => v.records,
  );
  perVolumeLag(
    "trackmirror_backup_volume_lag_seconds",
    "How long the oldest record of the volume not yet applied and synced has waited (0: none)",
    (v) => v.seconds,
  );
  metrics.counter(
    "trackmirror_backup_records_applied_total",
    "Records applied to the secondaries and synced since start",
    [],
    (set) => set({}, applier.recordsApplied),
  );
  const clock = opts.clock;
  const fence = new EpochFence(clock ? () => clock.now() : undefined);
  try {
    link = opts.link
      ? LinkServer.listen({ journal, store, fence, metrics, token: opts.token }, opts.link)
      : undefined;
  } catch (err) {
    await journal.close();
    await applier.stop();
    stages.close();
    store.close();
    throw err;
  }
  const app = createBackupApp({
    journal,
    applier,
    store,
    stages,
    metrics,
    batchBytesMax,
    fence,
    linkAddresses: () => link?.addresses ?? [],
    token: opts.token,
  });
  let closing: Promise<void> | undefined;
  return {
    app,
    journal,
    applier,
    store,
    stages,
    metrics,
    fence,
    link,
    close() {
      closing ??= (async () => {
        await link?.close();
        await journal.close();
        await applier.stop();
        stages.close();
        store.close();
      })();
      return closing;
    },
  };
}
