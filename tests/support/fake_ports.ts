/** In-memory stand-ins for the tracker and backup ports of the host agent, recording every call. */
import type { BackupLinkPort } from "../../host/agent/backup_link.ts";
import type { MirrorRecord } from "../../host/fork/backup_batcher.ts";
import type { LinkClientOptions } from "../../host/link/link_client.ts";
import type { UnhardenedRegions } from "../../host/link/unhardened.ts";
import type { AckMode, LinkWelcome } from "../../src/link_protocol.ts";
import type { HostBackup, HostTracker, SecondaryRegistered } from "../../host/agent/ports.ts";
import {
  decideWriter,
  newSecondaryGeneration,
  type SecondaryGeneration,
} from "../../backup/secondary_generation.ts";
import { ServiceCallError } from "../../src/http_client.ts";
import type { LogPage, TrackRequest, VolumeInfo, VolumeRegistration } from "../../src/schemas.ts";

/** A tracker that accepts everything; `dirtyRegions` is what getVolume reports. */
export class FakeTracker implements HostTracker {
  registrations: { name: string; reg: VolumeRegistration }[] = [];
  promotions: string[] = [];
  getVolumeCalls = 0;
  dirtyRegions = 0;
  regionsPromoted = 0;
  /** Set to make registerVolume fail with this status (0: unreachable). */
  refuse: { status: number; message: string } | undefined;
  /**
   * Issue 9: when set, answers carry this record generation and `markSeq` (raised by every
   * track); unset, answers carry neither, like a tracker from before generations.
   */
  generation: string | undefined;
  markSeq = 0;
  /** Set by `loseRecord`: track answers 404 until the volume is registered again. */
  #lost = false;
  tracks: TrackRequest[] = [];
  #waiters: { count: number; resolve: () => void }[] = [];

  registerVolume(name: string, reg: VolumeRegistration): Promise<VolumeInfo> {
    if (this.refuse) {
      const err = Object.assign(new Error(this.refuse.message), { status: this.refuse.status });
      return Promise.reject(err);
    }
    this.registrations.push({ name, reg });
    this.#lost = false;
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
  track(req: TrackRequest): Promise<unknown> {
    if (this.#lost) {
      return Promise.reject(
        new ServiceCallError(404, `Volume "${req.volume}" is not registered`),
      );
    }
    this.tracks.push(req);
    if (this.generation === undefined) return Promise.resolve({});
    return Promise.resolve({ generation: this.generation, markSeq: ++this.markSeq });
  }

  /** The tracker lost its KV: a new record generation, sequence 0, volumes unknown until registered. */
  loseRecord(): void {
    this.generation = crypto.randomUUID();
    this.markSeq = 0;
    this.#lost = true;
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
      ...(this.generation === undefined
        ? {}
        : { generation: this.generation, markSeq: this.markSeq }),
    };
  }
}

/** A backup that answers healthz with `healthy` and records registrations and batches. */
export class FakeBackup implements HostBackup {
  healthy = true;
  registrations: { name: string; sizeBytes: number; epoch?: number }[] = [];
  batches: { volume: string; bytes: number; epoch?: number }[] = [];
  /**
   * Issue 9: with `generations`, each secondary has a generation and a writer, kept like the real
   * backup keeps them (backup/secondary_generation.ts `decideWriter`), and answers carry them.
   */
  generations = false;
  readonly secondaries = new Map<string, SecondaryGeneration>();

  registerVolume(
    name: string,
    sizeBytes: number,
    epoch?: number,
    gen?: { primaryGeneration: string; adoptPrimary?: boolean },
  ): Promise<SecondaryRegistered | void> {
    this.registrations.push({ name, sizeBytes, epoch });
    if (!this.generations) return Promise.resolve();
    let state = this.secondaries.get(name) ?? newSecondaryGeneration();
    if (gen) state = decideWriter(state, gen.primaryGeneration, gen.adoptPrimary ?? false);
    this.secondaries.set(name, state);
    return Promise.resolve({ ...state });
  }
  writeBatch(volume: string, body: Uint8Array, epoch?: number): Promise<unknown> {
    this.batches.push({ volume, bytes: body.length, epoch });
    return Promise.resolve({});
  }
  healthz(): Promise<boolean> {
    return Promise.resolve(this.healthy);
  }
  linkAddresses(): Promise<string[]> {
    return Promise.resolve(["/fake/backup-link.sock"]);
  }
  /** Links this backup accepted, newest last. */
  links: FakeLink[] = [];
  /** For `HostAgentOptions.linkFactory`: links that record into this backup. */
  linkFactory = (o: LinkClientOptions): BackupLinkPort => {
    const link = new FakeLink(this, o);
    this.links.push(link);
    return link;
  };
}

/**
 * A link that acknowledges every record at once and records what it carried (with the epoch its
 * HELLO named) into its FakeBackup's `batches`; `fail()` breaks it like a cut connection.
 */
export class FakeLink implements BackupLinkPort {
  failure: Error | undefined = new Error("The link is not open");
  readonly ack: AckMode;
  framesSent = 0;
  recordsSent = 0;
  #listeners: ((err: Error) => void)[] = [];

  constructor(private readonly backup: FakeBackup, readonly opts: LinkClientOptions) {
    this.ack = opts.ack ?? "durable";
  }
  open(): Promise<LinkWelcome> {
    this.failure = undefined;
    return Promise.resolve({ credit: 1 << 25, volumes: [] } as unknown as LinkWelcome);
  }
  #carry(volume: string, bytes: number): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    const epoch = this.opts.volumes.find((v) => v.name === volume)?.epoch;
    this.backup.batches.push({ volume, bytes, epoch });
    this.framesSent++;
    this.recordsSent++;
    return Promise.resolve();
  }
  submit(volume: string, rec: MirrorRecord): Promise<void> {
    return this.#carry(volume, rec.length);
  }
  submitEncoded(volume: string, body: Uint8Array): Promise<void> {
    return this.#carry(volume, body.length);
  }
  unhardened(): UnhardenedRegions | undefined {
    return undefined;
  }
  clearUnhardened(): void {}
  onFailure(listener: (err: Error) => void): void {
    this.#listeners.push(listener);
  }
  fail(err = new Error("The backup closed the link")): void {
    if (this.failure) return;
    this.failure = err;
    for (const l of this.#listeners) l(err);
  }
  close(): Promise<void> {
    this.fail(new Error("The link was closed"));
    return Promise.resolve();
  }
}
