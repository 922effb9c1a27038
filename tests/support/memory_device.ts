/**
 * Test layers of the BlockDevice interface, after nbdkit's memory plugin and its delay, error and
 * log filters: an in-memory device, a layer that records every call (with the data written), a
 * layer that holds calls until the test releases them, and one that fails on demand.
 */
import { type BlockDevice, PassThroughDevice } from "../../src/block_device.ts";
import { checkRange } from "../../src/extent.ts";

/** A device held in memory. Checks ranges itself so a missed boundary check fails loudly. */
export class MemoryDevice implements BlockDevice {
  readonly bytes: Uint8Array;
  #closed = false;

  constructor(readonly sizeBytes: number, fill?: (bytes: Uint8Array) => void) {
    this.bytes = new Uint8Array(sizeBytes);
    fill?.(this.bytes);
  }

  read(offset: number, length: number): Promise<Uint8Array> {
    this.#check(offset, length);
    return Promise.resolve(this.bytes.slice(offset, offset + length));
  }
  write(offset: number, data: Uint8Array): Promise<void> {
    this.#check(offset, data.length);
    this.bytes.set(data, offset);
    return Promise.resolve();
  }
  flush(): Promise<void> {
    if (this.#closed) throw new Error("MemoryDevice is closed");
    return Promise.resolve();
  }
  trim(offset: number, length: number): Promise<void> {
    return this.writeZeroes(offset, length);
  }
  writeZeroes(offset: number, length: number): Promise<void> {
    this.#check(offset, length);
    this.bytes.fill(0, offset, offset + length);
    return Promise.resolve();
  }
  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }

  #check(offset: number, length: number): void {
    if (this.#closed) throw new Error("MemoryDevice is closed");
    checkRange(offset, length, this.sizeBytes, "MemoryDevice");
  }
}

/** One call a RecordingDevice saw. */
export interface DeviceCall {
  op: "read" | "write" | "flush" | "trim" | "writeZeroes";
  offset: number;
  length: number;
  fua: boolean;
  /** For writes: a copy of the data. */
  data?: Uint8Array;
}

/** Records every call before passing it on, and the most calls that were running at once. */
export class RecordingDevice extends PassThroughDevice {
  readonly calls: DeviceCall[] = [];
  running = 0;
  runningMax = 0;

  /** Calls of one kind. */
  of(op: DeviceCall["op"]): DeviceCall[] {
    return this.calls.filter((c) => c.op === op);
  }

  /** True when any call changed data (write, trim, writeZeroes). */
  get wrote(): boolean {
    return this.calls.some((c) => c.op === "write" || c.op === "trim" || c.op === "writeZeroes");
  }

  override read(offset: number, length: number): Promise<Uint8Array> {
    return this.#run({ op: "read", offset, length, fua: false }, () => super.read(offset, length));
  }
  override write(offset: number, data: Uint8Array, opts?: { fua?: boolean }): Promise<void> {
    const call: DeviceCall = {
      op: "write",
      offset,
      length: data.length,
      fua: opts?.fua === true,
      data: data.slice(),
    };
    return this.#run(call, () => super.write(offset, data, opts));
  }
  override flush(): Promise<void> {
    return this.#run({ op: "flush", offset: 0, length: 0, fua: false }, () => super.flush());
  }
  override trim(offset: number, length: number, opts?: { fua?: boolean }): Promise<void> {
    const call: DeviceCall = { op: "trim", offset, length, fua: opts?.fua === true };
    return this.#run(call, () => super.trim(offset, length, opts));
  }
  override writeZeroes(offset: number, length: number, opts?: { fua?: boolean }): Promise<void> {
    const call: DeviceCall = { op: "writeZeroes", offset, length, fua: opts?.fua === true };
    return this.#run(call, () => super.writeZeroes(offset, length, opts));
  }

  async #run<T>(call: DeviceCall, next: () => Promise<T>): Promise<T> {
    this.calls.push(call);
    this.running++;
    this.runningMax = Math.max(this.runningMax, this.running);
    try {
      return await next();
    } finally {
      this.running--;
    }
  }
}

/**
 * Holds every call that `hold` selects until the test calls `release`; the others pass at once.
 * `waiting` tells how many calls are held.
 */
export class GateDevice extends PassThroughDevice {
  #held: { call: string; resume: () => void }[] = [];
  #arrivals: (() => void)[] = [];
  #open = false;

  constructor(next: BlockDevice, private hold: (op: string, offset: number) => boolean) {
    super(next);
  }

  get waiting(): number {
    return this.#held.length;
  }

  /** Resolves once at least `n` calls are held; rejects after `ms` so a broken server fails fast. */
  async until(n: number, ms = 5000): Promise<void> {
    const deadline = Date.now() + ms;
    while (this.#held.length < n) {
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`GateDevice: ${this.#held.length} calls held, waited for ${n}`);
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((r) => {
        this.#arrivals.push(r);
        timer = setTimeout(r, left);
      });
      clearTimeout(timer);
    }
  }

  /** Stops holding for good and lets every held call go on (test cleanup after a failure). */
  openAll(): void {
    this.#open = true;
    this.release();
  }

  /** Lets held calls go on: all of them, or those whose description includes `match`. */
  release(match?: string): void {
    const go = this.#held.filter((h) => match === undefined || h.call.includes(match));
    this.#held = this.#held.filter((h) => !go.includes(h));
    for (const h of go) h.resume();
  }

  override read(offset: number, length: number): Promise<Uint8Array> {
    return this.#gate("read", offset, () => super.read(offset, length));
  }
  override write(offset: number, data: Uint8Array, opts?: { fua?: boolean }): Promise<void> {
    return this.#gate("write", offset, () => super.write(offset, data, opts));
  }
  override flush(): Promise<void> {
    return this.#gate("flush", 0, () => super.flush());
  }
  override trim(offset: number, length: number, opts?: { fua?: boolean }): Promise<void> {
    return this.#gate("trim", offset, () => super.trim(offset, length, opts));
  }
  override writeZeroes(offset: number, length: number, opts?: { fua?: boolean }): Promise<void> {
    return this.#gate("writeZeroes", offset, () => super.writeZeroes(offset, length, opts));
  }

  async #gate<T>(op: string, offset: number, next: () => Promise<T>): Promise<T> {
    if (!this.#open && this.hold(op, offset)) {
      await new Promise<void>((resume) => {
        this.#held.push({ call: `${op}@${offset}`, resume });
        for (const r of this.#arrivals.splice(0)) r();
      });
    }
    return next();
  }
}

/** Fails the selected calls with `message` while `failing` is true, like nbdkit's error filter. */
export class FaultDevice extends PassThroughDevice {
  failing = true;

  constructor(
    next: BlockDevice,
    private fails: (op: string) => boolean,
    private message = "Injected fault",
  ) {
    super(next);
  }

  override read(offset: number, length: number): Promise<Uint8Array> {
    return this.#maybe("read", () => super.read(offset, length));
  }
  override write(offset: number, data: Uint8Array, opts?: { fua?: boolean }): Promise<void> {
    return this.#maybe("write", () => super.write(offset, data, opts));
  }
  override flush(): Promise<void> {
    return this.#maybe("flush", () => super.flush());
  }
  override trim(offset: number, length: number, opts?: { fua?: boolean }): Promise<void> {
    return this.#maybe("trim", () => super.trim(offset, length, opts));
  }
  override writeZeroes(offset: number, length: number, opts?: { fua?: boolean }): Promise<void> {
    return this.#maybe("writeZeroes", () => super.writeZeroes(offset, length, opts));
  }

  #maybe<T>(op: string, next: () => Promise<T>): Promise<T> {
    if (this.failing && this.fails(op)) return Promise.reject(new Error(`${this.message} (${op})`));
    return next();
  }
}
