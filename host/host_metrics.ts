/**
 * The host agent's metric families, read at scrape time from what the agent keeps for its status
 * (component table, fork counters, marker cache, resync and cycle progress) — nothing is counted
 * on the write path for them. The latency histograms and the unacknowledged writes come from the
 * timed ports (port_timing.ts) main.ts wraps the tracker and the link in.
 */
import { componentState, type HostMode, hostMode, trustView } from "../src/host_schemas.ts";
import type { Metrics } from "../src/metrics.ts";
import type { HostAgent } from "./agent/host_agent.ts";
import { latestResync } from "./agent/volume_stack.ts";
import { hostLatency, type UnackedWrites } from "./port_timing.ts";

/** Registers every host family on `metrics`; `unacked` when the link is timed (main.ts). */
export function registerHostMetrics(
  metrics: Metrics,
  agent: HostAgent,
  unacked?: UnackedWrites,
): void {
  hostLatency(metrics); // the families exist (empty) even when the ports are not timed
  registerComponents(metrics, agent);
  registerWrites(metrics, agent);
  registerVolumes(metrics, agent, unacked);
  registerResync(metrics, agent);
}

/** The mode the status shows (host/agent/status_view.ts). */
function modeOf(agent: HostAgent): HostMode {
  if (agent.opts.forking === false) return "pass-through";
  return agent.backupStatus.state === "online" ? "mirroring" : "tracking";
}

function registerComponents(metrics: Metrics, agent: HostAgent): void {
  const states = () => ({ backup: agent.backupStatus.state, tracker: agent.trackerHealth.state });
  metrics.gauge(
    "trackmirror_host_component_up",
    "1 when the component is online in this host's status table, 0 otherwise (offline, " +
      "probing, degraded)",
    ["component"],
    (set) => {
      for (const [component, state] of Object.entries(states())) {
        set({ component }, state === "online" ? 1 : 0);
      }
    },
  );
  metrics.gauge(
    "trackmirror_host_component_state",
    "1 for each component's current state in this host's status table, 0 for the others",
    ["component", "state"],
    (set) => {
      for (const [component, current] of Object.entries(states())) {
        for (const state of componentState.options) {
          set({ component, state }, state === current ? 1 : 0);
        }
      }
    },
  );
  metrics.gauge(
    "trackmirror_host_backup_up",
    '1 when the backup is online, 0 otherwise (as component_up{component="backup"})',
    [],
    (set) => set({}, agent.backupStatus.isOnline ? 1 : 0),
  );
  metrics.gauge(
    "trackmirror_host_backup_state",
    "1 for the backup's current state in this host's status table, 0 for the others " +
      "(degraded: it answers but cannot take writes)",
    ["state"],
    (set) => {
      const current = agent.backupStatus.state;
      for (const state of componentState.options) set({ state }, state === current ? 1 : 0);
    },
  );
}

function registerWrites(metrics: Metrics, agent: HostAgent): void {
  metrics.counter(
    "trackmirror_host_writes_total",
    "Forked writes by outcome: backup (acknowledged by the backup), tracker (covered by a " +
      "tracker mark), failed (neither acknowledged; primary untouched)",
    ["volume", "outcome"],
    (set) => {
      for (const v of agent.volumes) {
        const n = v.fork?.counters;
        set({ volume: v.name, outcome: "backup" }, n?.viaBackup ?? 0);
        set({ volume: v.name, outcome: "tracker" }, n?.viaTracker ?? 0);
        set({ volume: v.name, outcome: "failed" }, n?.failed ?? 0);
      }
    },
  );
  metrics.counter(
    "trackmirror_host_primary_errors_total",
    "Writes, zeroings and flushes the primary image refused (ENOSPC, EIO)",
    ["volume"],
    (set) => {
      for (const v of agent.volumes) set({ volume: v.name }, v.primary.errors);
    },
  );
}

function registerVolumes(metrics: Metrics, agent: HostAgent, unacked?: UnackedWrites): void {
  metrics.gauge(
    "trackmirror_host_volume_mode",
    "1 for the volume's current mode, 0 for the others: mirroring (writes forked to the " +
      "backup), tracking (the backup is away: writes are marked at the tracker), pass-through",
    ["volume", "mode"],
    (set) => {
      const current = modeOf(agent);
      for (const v of agent.volumes) {
        for (const mode of hostMode.options) {
          set({ volume: v.name, mode }, mode === current ? 1 : 0);
        }
      }
    },
  );
  metrics.gauge(
    "trackmirror_host_volume_trust",
    "1 for the volume's trust state, 0 for the others (issue 9): trusted, checksum-resync-needed " +
      "(the tracker's record was lost or is older, or the secondary was replaced), split-brain",
    ["volume", "trust"],
    (set) => {
      for (const v of agent.volumes) {
        for (const trust of trustView.options) {
          set({ volume: v.name, trust }, v.trust.trust === trust ? 1 : 0);
        }
      }
    },
  );
  metrics.gauge(
    "trackmirror_host_volume_dirty_regions",
    "Regions of the volume this host knows are marked dirty at the tracker (its cache of the " +
      "tracker's record: a subset of it, empty after a restart until marked again)",
    ["volume"],
    (set) => {
      for (const v of agent.volumes) set({ volume: v.name }, v.marker.cache.size);
    },
  );
  metrics.gauge(
    "trackmirror_host_volume_dirty_bytes",
    "Bytes of the regions in trackmirror_host_volume_dirty_regions (whole regions, at most " +
      "the volume's size)",
    ["volume"],
    (set) => {
      for (const v of agent.volumes) {
        set({ volume: v.name }, Math.min(v.sizeBytes, v.marker.cache.size * v.marker.regionBytes));
      }
    },
  );
  if (!unacked) return;
  metrics.gauge(
    "trackmirror_host_volume_backup_unacked_bytes",
    "Bytes of the volume's forked writes sent on the backup link and not yet acknowledged: the " +
      "host's view of the backup's lag",
    ["volume"],
    (set) => {
      for (const v of agent.volumes) set({ volume: v.name }, unacked.view(v.name).bytes);
    },
  );
  metrics.gauge(
    "trackmirror_host_volume_backup_unacked_seconds",
    "How long the oldest forked write of the volume not yet acknowledged by the backup has " +
      "waited (0: none)",
    ["volume"],
    (set) => {
      for (const v of agent.volumes) set({ volume: v.name }, unacked.view(v.name).seconds);
    },
  );
}

function registerResync(metrics: Metrics, agent: HostAgent): void {
  const progress = (name: string, help: string, value: (v: HostAgent["volumes"][0]) => number) =>
    metrics.gauge(name, help, ["volume"], (set) => {
      for (const v of agent.volumes) set({ volume: v.name }, value(v));
    });
  progress(
    "trackmirror_host_resync_running",
    "1 while a resync (plain or checksum) or a cycle of the volume runs",
    (v) => latestResync(v).progress.state === "running" ? 1 : 0,
  );
  progress(
    "trackmirror_host_resync_done_bytes",
    "Bytes the volume's latest resync or cycle has copied (checksum resync: compared) so far",
    (v) => latestResync(v).progress.bytesDone,
  );
  progress(
    "trackmirror_host_resync_planned_bytes",
    "Bytes the volume's latest resync or cycle set out to copy (checksum resync: compare)",
    (v) => latestResync(v).progress.bytesTotal,
  );
  metrics.counter(
    "trackmirror_host_cycles_committed_total",
    "Cycles of cycle-mode volumes committed at the backup since the agent started",
    ["volume"],
    (set) => {
      for (const v of agent.volumes) {
        if (v.cycles) set({ volume: v.name }, v.cycles.progress.cyclesCommitted);
      }
    },
  );
  metrics.counter(
    "trackmirror_host_cycle_shipped_bytes_total",
    "Bytes cycles of cycle-mode volumes shipped to the backup (walker and copy-before-write)",
    ["volume"],
    (set) => {
      for (const v of agent.volumes) {
        if (v.cycles) set({ volume: v.name }, v.cycles.progress.bytesShippedTotal);
      }
    },
  );
  metrics.gauge(
    "trackmirror_host_cycle_copied_before_write_regions",
    "Regions of the cycle-mode volume's latest cycle shipped by a write before it overwrote " +
      "them (copy-before-write)",
    ["volume"],
    (set) => {
      for (const v of agent.volumes) {
        if (v.cycles) set({ volume: v.name }, v.cycles.progress.regionsCopiedBeforeWrite);
      }
    },
  );
}
