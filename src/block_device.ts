/**
 * The block device interface every layer of the host's write path implements, after nbdkit's
 * filters: a layer wraps another device and acts before, after or instead of it. Ranges are
 * checked once, at the boundary (the NBD or HTTP front-end), before any layer sees them.
 */
export interface BlockDevice {
  /** Size in bytes; fixed for the life of the device. */
  readonly sizeBytes: number;
  /** Reads `length` bytes at `offset`. */
  read(offset: number, length: number): Promise<Uint8Array>;
  /** Writes `data` at `offset`. With `fua`, the data is durable on return. */
  write(offset: number, data: Uint8Array, opts?: { fua?: boolean }): Promise<void>;
  /** Makes every completed write durable. */
  flush(): Promise<void>;
  /** Discards a range: afterwards it reads as zeros. */
  trim(offset: number, length: number, opts?: { fua?: boolean }): Promise<void>;
  /** Writes zeros over a range. */
  writeZeroes(offset: number, length: number, opts?: { fua?: boolean }): Promise<void>;
  /** Releases resources; the device is unusable after. */
  close(): Promise<void>;
}

/** A layer that passes every operation to `next` unchanged; subclasses override what they change. */
export class PassThroughDevice implements BlockDevice {
  constructor(protected readonly next: BlockDevice) {}
  get sizeBytes(): number {
    return this.next.sizeBytes;
  }
  read(offset: number, length: number): Promise<Uint8Array> {
    return this.next.read(offset, length);
  }
  write(offset: number, data: Uint8Array, opts?: { fua?: boolean }): Promise<void> {
    return this.next.write(offset, data, opts);
  }
  flush(): Promise<void> {
    return this.next.flush();
  }
  trim(offset: number, length: number, opts?: { fua?: boolean }): Promise<void> {
    return this.next.trim(offset, length, opts);
  }
  writeZeroes(offset: number, length: number, opts?: { fua?: boolean }): Promise<void> {
    return this.next.writeZeroes(offset, length, opts);
  }
  close(): Promise<void> {
    return this.next.close();
  }
}
