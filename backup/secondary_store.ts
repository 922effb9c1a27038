/**
 * The secondary volumes: raw sparse image files `<data>/volumes/<name>.img`, one per registered
 * volume. The file's size is the registered size, so registration needs no other record.
 *
 * Each image has a generation sidecar beside it (secondary_generation.ts, issue 9): made with the
 * image, read at open (made then for an image that has none).
 *
 * Writes are positional and synchronous (seek + write in one synchronous function, as
 * host/fork/file_volume.ts does), so nothing can interleave between the seek and the transfer; only
 * syncing is asynchronous.
 */
import { join } from "node:path";
import { checkRange } from "../src/extent.ts";
import type { JournalRecord } from "../src/journal_record.ts";
import { conflict } from "../src/errors.ts";
import { checkName } from "../src/schemas.ts";
import {
  decideWriter,
  newSecondaryGeneration,
  readSecondaryGeneration,
  type SecondaryGeneration,
  writeSecondaryGeneration,
} from "./secondary_generation.ts";
import { syncDir } from "./segment_files.ts";
import { logLine } from "../src/events.ts";

/** Largest zero buffer written at once for a zero record. */
const zeroChunkBytes = 1024 * 1024;
const imageSuffix = ".img";

/** A registered secondary volume. */
export interface SecondaryVolume {
  name: string;
  sizeBytes: number;
}

interface OpenVolume extends SecondaryVolume {
  file: Deno.FsFile;
  gen: SecondaryGeneration;
}

/** The registered secondary volumes of one backup, each an open image file. */
export class SecondaryStore {
  #volumes = new Map<string, OpenVolume>();
  /** Registrations in progress, so two concurrent PUTs of one name create one file. */
  #registering = new Map<string, Promise<boolean>>();
  #zeros = new Uint8Array(0);

  private constructor(readonly dir: string) {}

  /** Opens every `<name>.img` in `dir` (created if absent); files with other names are skipped. */
  static async open(dir: string): Promise<SecondaryStore> {
    await Deno.mkdir(dir, { recursive: true });
    const store = new SecondaryStore(dir);
    for await (const entry of Deno.readDir(dir)) {
      if (!entry.isFile || !entry.name.endsWith(imageSuffix)) continue;
      const name = entry.name.slice(0, -imageSuffix.length);
      try {
        checkName("Volume", name);
      } catch {
        logLine(
          "backup",
          "warn",
          `Secondary store: skipping "${entry.name}": not a valid volume name`,
        );
        continue;
      }
      const path = join(dir, entry.name);
      const file = await Deno.open(path, { read: true, write: true });
      try {
        const { size } = await file.stat();
        let gen = await readSecondaryGeneration(dir, name);
        if (!gen) {
          gen = newSecondaryGeneration();
          await writeSecondaryGeneration(dir, name, gen);
          logLine(
            "backup",
            "warn",
            `Secondary store: volume "${name}" had no generation sidecar; made ${gen.generation}`,
          );
        }
        store.#volumes.set(name, { name, sizeBytes: size, file, gen });
      } catch (err) {
        file.close();
        store.close();
        throw err;
      }
    }
    return store;
  }

  /** The registered size of `name`, or undefined when it is not registered. */
  sizeOf(name: string): number | undefined {
    return this.#volumes.get(name)?.sizeBytes;
  }

  /** The generation of `name` and the primary generation that last wrote it (issue 9). */
  generationOf(name: string): SecondaryGeneration | undefined {
    return this.#volumes.get(name)?.gen;
  }

  /**
   * Records that the primary `primaryGeneration` registers `name`: it becomes the writer when
   * there is none, or when it `adopt`s (secondary_generation.ts `decideWriter`); persisted before
   * this resolves. Returns the generation as it is now.
   */
  async recordWriter(
    name: string,
    primaryGeneration: string,
    adopt: boolean,
  ): Promise<SecondaryGeneration> {
    const vol = this.#volumes.get(name);
    if (!vol) throw new RangeError(`Volume "${name}" is not registered`);
    const next = decideWriter(vol.gen, primaryGeneration, adopt);
    if (next !== vol.gen) {
      await writeSecondaryGeneration(this.dir, name, next);
      if (vol.gen.writerGeneration !== null) {
        logLine(
          "backup",
          "warn",
          `Secondary store: volume "${name}" now written by primary generation ` +
            `${primaryGeneration}, not ${vol.gen.writerGeneration} (adopted: its differences ` +
            `are discarded by the checksum resync that follows)`,
        );
      }
      vol.gen = next;
    }
    return vol.gen;
  }

  /** The registered volumes, by name. */
  list(): SecondaryVolume[] {
    return [...this.#volumes.values()]
      .map(({ name, sizeBytes }) => ({ name, sizeBytes }))
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  /**
   * Registers `name` with `sizeBytes`: creates a sparse file of that size and makes it durable
   * before answering, so no record for the volume is journaled before its file exists for good.
   * Resolves true when created, false when it already existed with that size; throws 409 for
   * another size. `name` must have passed `checkName`.
   */
  async register(name: string, sizeBytes: number): Promise<boolean> {
    checkName("Volume", name);
    const inFlight = this.#registering.get(name);
    if (inFlight) {
      await inFlight.catch(() => {});
      return this.register(name, sizeBytes);
    }
    const existing = this.#volumes.get(name);
    if (existing) {
      if (existing.sizeBytes !== sizeBytes) {
        throw conflict(
          `Volume "${name}" is registered with ${existing.sizeBytes} bytes, not ${sizeBytes}`,
        );
      }
      return false;
    }
    const creating = this.#create(name, sizeBytes);
    this.#registering.set(name, creating);
    try {
      return await creating;
    } finally {
      this.#registering.delete(name);
    }
  }

  async #create(name: string, sizeBytes: number): Promise<boolean> {
    const path = join(this.dir, name + imageSuffix);
    const file = await Deno.open(path, { read: true, write: true, createNew: true });
    const gen = newSecondaryGeneration();
    try {
      await file.truncate(sizeBytes);
      await file.sync();
      await writeSecondaryGeneration(this.dir, name, gen);
      await syncDir(this.dir);
    } catch (err) {
      file.close();
      await Deno.remove(path).catch(() => {});
      throw err;
    }
    this.#volumes.set(name, { name, sizeBytes, file, gen });
    return true;
  }

  /** Applies one journal record: its data, or zeros (not durable until `sync`). */
  applySync(rec: JournalRecord): void {
    if (rec.kind === "write") this.writeSync(rec.volume, rec.offset, rec.data);
    else if (rec.kind === "zero") this.zeroSync(rec.volume, rec.offset, rec.length);
    else throw new Error(`A ${rec.kind} marker of "${rec.volume}" is not data to apply`);
  }

  /** Writes `data` at `offset` of `name` (not durable until `sync`). */
  writeSync(name: string, offset: number, data: Uint8Array): void {
    const vol = this.#get(name, offset, data.length);
    vol.file.seekSync(offset, Deno.SeekMode.Start);
    let done = 0;
    while (done < data.length) done += vol.file.writeSync(data.subarray(done));
  }

  /** Writes `length` zero bytes at `offset` of `name` (not durable until `sync`). */
  zeroSync(name: string, offset: number, length: number): void {
    const vol = this.#get(name, offset, length);
    if (this.#zeros.length === 0) this.#zeros = new Uint8Array(zeroChunkBytes);
    vol.file.seekSync(offset, Deno.SeekMode.Start);
    for (let done = 0; done < length;) {
      const chunk = this.#zeros.subarray(0, Math.min(zeroChunkBytes, length - done));
      done += vol.file.writeSync(chunk);
    }
  }

  /**
   * Reads `length` bytes at `offset` of `name`: positional and synchronous like the writes, so no
   * apply can move the file position between the seek and the read. A short file reads as zeros.
   */
  readSync(name: string, offset: number, length: number): Uint8Array {
    const vol = this.#get(name, offset, length);
    const out = new Uint8Array(length);
    vol.file.seekSync(offset, Deno.SeekMode.Start);
    let done = 0;
    while (done < length) {
      const n = vol.file.readSync(out.subarray(done));
      if (n === null || n === 0) break;
      done += n;
    }
    return out;
  }

  /** Makes every write to the named volumes durable (fdatasync each). */
  async sync(names: Iterable<string>): Promise<void> {
    await Promise.all([...new Set(names)].map((name) => this.#volumes.get(name)?.file.syncData()));
  }

  /** Makes every write to `name` durable, synchronously (a cycle commit, backup/cycle_stage.ts). */
  syncOneSync(name: string): void {
    this.#volumes.get(name)?.file.syncDataSync();
  }

  /** Syncs every volume. */
  syncAll(): Promise<void> {
    return this.sync(this.#volumes.keys());
  }

  /** Closes every file. */
  close(): void {
    for (const vol of this.#volumes.values()) vol.file.close();
    this.#volumes.clear();
  }

  #get(name: string, offset: number, length: number): OpenVolume {
    const vol = this.#volumes.get(name);
    if (!vol) throw new RangeError(`Volume "${name}" is not registered`);
    checkRange(offset, length, vol.sizeBytes, `volume "${name}"`);
    return vol;
  }
}
