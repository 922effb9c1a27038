/**
 * The primary volume: a raw image file, the bottom layer of the host's write path.
 *
 * I/O is positional and synchronous: one pread / pwrite through a second descriptor (node:fs
 * takes a position; Deno.FsFile needs a seek first, one more call per write), so requests never
 * depend on a shared file position; against the page cache a synchronous transfer costs
 * microseconds, and flush (fdatasync, on the Deno.FsFile: it covers the file whichever
 * descriptor wrote) stays asynchronous.
 *
 * Ranges are validated once, at the front-ends (HTTP app, NBD request); here, like nbdkit's
 * `backend_valid_range`, a bad range is a programmer error and fails an assertion.
 *
 * Disk errors (ENOSPC, EIO, real or injected through the test-only `TRACKMIRROR_FAULT_FILE` line
 * `primary=enospc|eio`) are counted, kept as `lastError` for status, and rethrown unchanged (their
 * `code` names the errno); the fork layer decides what they mean for the mirror.
 */
import assert from "node:assert/strict";
import { closeSync, openSync, readSync, writeSync } from "node:fs";
import type { BlockDevice } from "../../src/block_device.ts";
import type { FaultFile } from "../../src/fault_file.ts";

/** Largest zero buffer written at once by trim / writeZeroes. */
const zeroChunkBytes = 1024 * 1024;

export class FileVolume implements BlockDevice {
  #closed = false;
  /** Writes, zeroings and flushes the disk refused since open. */
  errors = 0;
  /** The last of them, for status. */
  lastError: string | null = null;
  lastErrorAt: number | null = null;

  private constructor(
    readonly path: string,
    readonly sizeBytes: number,
    private readonly file: Deno.FsFile,
    private readonly faults: FaultFile | undefined,
    /** The same file for positional reads and writes (node:fs descriptor). */
    private readonly fd: number,
  ) {}

  /**
   * Opens the image at `path`; creates it sparse with `sizeBytes` when it does not exist.
   * An existing image of another size is refused, never resized.
   */
  static async open(path: string, sizeBytes: number, faults?: FaultFile): Promise<FileVolume> {
    let existing: Deno.FileInfo | undefined;
    try {
      existing = await Deno.stat(path);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    if (existing && !existing.isFile) throw new RangeError(`Volume path "${path}" is not a file`);
    if (existing && existing.size !== sizeBytes) {
      throw new RangeError(
        `Volume image "${path}" is ${existing.size} bytes, not the ${sizeBytes} bytes asked for`,
      );
    }
    const file = await Deno.open(path, { read: true, write: true, create: true });
    if (!existing) await file.truncate(sizeBytes);
    let fd: number;
    try {
      fd = openSync(path, "r+");
    } catch (err) {
      file.close();
      throw err;
    }
    return new FileVolume(path, sizeBytes, file, faults, fd);
  }

  read(offset: number, length: number): Promise<Uint8Array> {
    this.#checkOpen();
    this.#assertRange(offset, length);
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const n = readSync(this.fd, out, done, length - done, offset + done);
      if (n === 0) break; // past the end of a sparse tail: zeros
      done += n;
    }
    return Promise.resolve(out);
  }

  async write(offset: number, data: Uint8Array, opts?: { fua?: boolean }): Promise<void> {
    this.#checkOpen();
    this.#assertRange(offset, data.length);
    try {
      this.#fault();
      this.#writeSync(offset, data);
      if (opts?.fua) await this.file.syncData();
    } catch (err) {
      throw this.#failed(err);
    }
  }

  /**
   * Takes an exclusive lock (flock) on the image until close, or fails at once naming the path
   * when another process holds one. The host agent holds its primaries so: a second agent on the
   * same file would be a second writer the tracker takes for a restart of the first (same
   * primary, tracker/registration.ts).
   */
  async lockExclusive(): Promise<void> {
    this.#checkOpen();
    if (!(await this.file.tryLock(true))) {
      throw new RangeError(
        `Volume image "${this.path}" is locked by another process (another host agent serving ` +
          `it?); stop that one or give another --volume path`,
      );
    }
  }

  async flush(): Promise<void> {
    this.#checkOpen();
    try {
      await this.file.syncData();
    } catch (err) {
      throw this.#failed(err);
    }
  }

  trim(offset: number, length: number, opts?: { fua?: boolean }): Promise<void> {
    return this.writeZeroes(offset, length, opts);
  }

  async writeZeroes(offset: number, length: number, opts?: { fua?: boolean }): Promise<void> {
    this.#checkOpen();
    this.#assertRange(offset, length);
    const zeros = new Uint8Array(Math.min(length, zeroChunkBytes));
    try {
      this.#fault();
      for (let done = 0; done < length; done += zeros.length) {
        this.#writeSync(offset + done, zeros.subarray(0, Math.min(zeros.length, length - done)));
      }
      if (opts?.fua) await this.file.syncData();
    } catch (err) {
      throw this.#failed(err);
    }
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      closeSync(this.fd);
      this.file.close();
    }
    return Promise.resolve();
  }

  #writeSync(offset: number, data: Uint8Array): void {
    let done = 0;
    while (done < data.length) {
      done += writeSync(this.fd, data, done, data.length - done, offset + done);
    }
  }

  /** Throws the injected disk error, when the fault file switches one on (tests only). */
  #fault(): void {
    this.faults?.check("primary", `Primary image "${this.path}"`);
  }

  /** Counts a refused write and returns the error to rethrow. */
  #failed(err: unknown): unknown {
    this.errors++;
    this.lastError = err instanceof Error ? err.message : String(err);
    this.lastErrorAt = Date.now();
    return err;
  }

  /** A range the front-ends let through must lie inside the image. */
  #assertRange(offset: number, length: number): void {
    // The messages are built only on failure: this runs for every write.
    if (!(Number.isSafeInteger(offset) && offset >= 0)) {
      assert.fail(`Offset ${offset} is not a byte offset`);
    }
    if (!(Number.isSafeInteger(length) && length > 0)) {
      assert.fail(`Length ${length} is not positive`);
    }
    if (offset + length > this.sizeBytes) {
      assert.fail(
        `Range ${offset}+${length} ends past the ${this.sizeBytes}-byte image "${this.path}"`,
      );
    }
  }

  #checkOpen(): void {
    if (this.#closed) throw new Error(`Volume image "${this.path}" is closed`);
  }
}
