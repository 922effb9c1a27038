/** In-memory stand-ins for the tracker and backup ports of the host agent, recording every call. */
import type { HostBackup, HostTracker } from "../../host/agent/ports.ts";
import type { LogPage, VolumeInfo, VolumeRegistration } from "../../src/schemas.ts";

/** A tracker that accepts everything; `dirtyRegions` is what getVolume reports. */
export class FakeTracker implements HostTracker {
  registrations: { name: string; reg: VolumeRegistration }[] = [];
  promotions: string[] = [];
  getVolumeCalls = 0;
  dirtyRegions = 0;
  regionsPromoted = 0;
  /** Set to make registerVolume fail with this status (0: unreachable). */
  refuse: { status: number; message: string } | undefined;
  #waiters: { count: number; resolve: () => void }[] = [];

  registerVolume(name: string, reg: VolumeRegistration): Promise<VolumeInfo> {
    if (this.refuse) {
      const err = Object.assign(new Error(this.refuse.message), { status: this.refuse.status });
      return Promise.reject(err);
    }
    this.registrations.push({ name, reg });
    for (const w of this.#waiters.filter((w) => this.registrations.length >= w.count)) {
      w.resolve();
    }
    return Promise.resolve(this.#info(name, reg.sizeBytes));
  }

  /** Resolves once `count` registrations were seen. */
  registered(count: number): Promise<void> {
    if (this.registrations.length >= count) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ count, resolve }));
  }

  promoteActivity(name: string, _host: string): Promise<{ regionsPromoted: number }> {
    this.promotions.push(name);
    return Promise.resolve({ regionsPromoted: this.regionsPromoted });
  }

  getVolume(name: string): Promise<VolumeInfo> {
    this.getVolumeCalls++;
    return Promise.resolve(this.#info(name, 0));
  }

  async *log(name: string): AsyncGenerator<LogPage> {
    yield { volume: name, regionBytes: 0, sizeBytes: 0, token: "1", extents: [], nextCursor: null };
  }

  clear() {
    return Promise.resolve({ regionsCleared: 0, regionsKept: 0 });
  }
  track() {
    return Promise.resolve({});
  }
  activity() {
    return Promise.resolve({});
  }
  retireActivity() {
    return Promise.resolve({});
  }

  #info(name: string, sizeBytes: number): VolumeInfo {
    return {
      name,
      sizeBytes,
      regionBytes: 0,
      ownerHost: "host0",
      ownerUrl: "http://127.0.0.1:1",
      leaseExpiresAt: 0,
      dirtyRegions: this.dirtyRegions,
      dirtyBytes: 0,
      oldestMarkAt: null,
      activityRegions: 0,
      activityByHost: {},
    };
  }
}

/** A backup that answers healthz with `healthy` and records registrations and batches. */
export class FakeBackup implements HostBackup {
  healthy = true;
  registrations: { name: string; sizeBytes: number; epoch?: number }[] = [];
  batches: { volume: string; bytes: number; epoch?: number }[] = [];

  registerVolume(name: string, sizeBytes: number, epoch?: number): Promise<void> {
    this.registrations.push({ name, sizeBytes, epoch });
    return Promise.resolve();
  }
  writeBatch(volume: string, body: Uint8Array, epoch?: number): Promise<unknown> {
    this.batches.push({ volume, bytes: body.length, epoch });
    return Promise.resolve({});
  }
  healthz(): Promise<boolean> {
    return Promise.resolve(this.healthy);
  }
}
