/**
 * The backup as the host sees it: its status (online, offline, probing), the epoch, the probe that
 * brings it back, and the epoch-stamped writer the write path and resync send batches through.
 * The writer stays behind the `BatchWriter` interface so another transport can replace HTTP.
 */
import type { Clock } from "../../src/clock.ts";
import type { BatchWriter } from "../fork/backup_batcher.ts";
import { ComponentStatus, type ProbeOptions } from "./component_status.ts";
import type { HostBackup } from "./ports.ts";

export class BackupLink {
  readonly status: ComponentStatus;
  /** The backup as the write path and resync see it: every batch carries the current epoch. */
  readonly writer: BatchWriter;
  /**
   * Raised whenever the backup goes offline; sent with every batch and with the volume
   * registration that brings the backup back, so the backup refuses batches the agent gave up on
   * (backup/epoch_fence.ts). Starts at the clock so it also rises across agent restarts.
   */
  #epoch: number;
  /** Volumes the probe registers with the backup: name → size in bytes. */
  readonly #volumes = new Map<string, number>();

  constructor(private readonly backup: HostBackup, clock: Clock, probe?: ProbeOptions) {
    this.#epoch = clock.now();
    this.writer = {
      writeBatch: (volume, body) => backup.writeBatch(volume, body, this.#epoch),
    };
    this.status = new ComponentStatus("backup", () => this.#probe(), clock, probe);
    this.status.onChange((state) => {
      if (state === "offline") this.#epoch++;
    });
  }

  get epoch(): number {
    return this.#epoch;
  }

  /** Adds a volume the probe registers with the backup before declaring it online. */
  addVolume(name: string, sizeBytes: number): void {
    this.#volumes.set(name, sizeBytes);
  }

  /** The backup is usable again when it answers and knows every volume. */
  async #probe(): Promise<void> {
    if (!(await this.backup.healthz())) throw new Error("Backup /healthz did not answer ok");
    for (const [name, sizeBytes] of this.#volumes) {
      await this.backup.registerVolume(name, sizeBytes, this.#epoch);
    }
  }
}
