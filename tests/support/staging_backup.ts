/**
 * A backup writer for in-process cycle tests that behaves like backup/cycle_stage.ts: records of a
 * volume between `cycle-begin` and `cycle-commit` are staged and applied to the in-memory
 * secondary only at the commit; a second begin continues the open stage. `hold` gates the next
 * batch carrying data, `failNext` makes the next one carrying data fail.
 */
import assert from "node:assert/strict";
import { decodeRecord } from "../../src/journal_record.ts";
import { type Gate, gate } from "./gate.ts";

interface Staged {
  offset: number;
  data: Uint8Array;
}

export class StagingBackup {
  readonly secondary: Uint8Array;
  readonly #stage: Staged[] = [];
  stageOpen = false;
  commits = 0;
  /** Offsets of the data records received, in order (to count how often a region was shipped). */
  readonly shipped: number[] = [];
  #held: { gate: Gate; reached: Gate } | undefined;
  #fail: Error | undefined;

  constructor(sizeBytes: number) {
    this.secondary = new Uint8Array(sizeBytes);
  }

  /** Holds the next batch carrying data; `reached` opens once it arrived. */
  hold(): { release(): void; reached: Promise<void> } {
    const held = { gate: gate(), reached: gate() };
    this.#held = held;
    return { release: () => held.gate.open(), reached: held.reached.opened };
  }

  /** The next batch carrying data fails (the link dropped). */
  failNext(message = "Link closed"): void {
    this.#fail = new Error(message);
  }

  readonly writer = {
    writeBatch: async (_volume: string, body: Uint8Array): Promise<void> => {
      const records = [];
      for (let pos = 0; pos < body.length;) {
        const r = decodeRecord(body, pos);
        assert.ok(r.ok);
        records.push(r.record);
        pos = r.next;
      }
      const carriesData = records.some((r) => r.kind === "write");
      if (carriesData && this.#fail) {
        const err = this.#fail;
        this.#fail = undefined;
        throw err;
      }
      if (carriesData && this.#held) {
        const held = this.#held;
        this.#held = undefined;
        held.reached.open();
        await held.gate.opened;
      }
      for (const r of records) {
        if (r.kind === "cycle-begin") this.stageOpen = true;
        else if (r.kind === "cycle-commit") {
          for (const s of this.#stage) this.secondary.set(s.data, s.offset);
          this.#stage.length = 0;
          this.stageOpen = false;
          this.commits++;
        } else if (r.kind === "write") {
          this.shipped.push(r.offset);
          const staged = { offset: r.offset, data: r.data.slice() };
          if (this.stageOpen) this.#stage.push(staged);
          else this.secondary.set(staged.data, staged.offset);
        }
      }
    },
  };
}
