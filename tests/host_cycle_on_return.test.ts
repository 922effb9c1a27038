/**
 * Issue 10: when the backup comes back, the agent opens a cycle on the new link for every volume
 * the tracker holds dirty, and for one whose state the tracker cannot tell; a clean volume gets
 * none (its mirrored writes go straight to its secondary, as before).
 */
import assert from "node:assert/strict";
import { openCyclesOnReturn } from "../host/agent/cycle_on_return.ts";
import { decodeRecord } from "../src/journal_record.ts";
import type { VolumeInfo } from "../src/schemas.ts";
import { setLogQuiet } from "../src/log_line.ts";

Deno.test("a cycle opens on return for dirty volumes and for volumes the tracker cannot vouch for", async () => {
  const dirty: Record<string, number | "down"> = { a: 3, b: 0, c: "down" };
  const tracker = {
    getVolume(name: string): Promise<VolumeInfo> {
      const d = dirty[name];
      if (d === "down") return Promise.reject(new Error("tracker unreachable"));
      return Promise.resolve({ name, dirtyRegions: d } as VolumeInfo);
    },
  };
  const sent: string[] = [];
  setLogQuiet(true); // the warning about "c" (the tracker cannot tell) is expected
  try {
    const opened = await openCyclesOnReturn(tracker, ["a", "b", "c"], (volume, body) => {
      const r = decodeRecord(body, 0);
      assert.ok(r.ok);
      assert.equal(r.record.volume, volume);
      sent.push(`${volume}:${r.record.kind}`);
      return Promise.resolve();
    });
    assert.deepEqual(opened, ["a", "c"]);
    assert.deepEqual(sent, ["a:cycle-begin", "c:cycle-begin"]);
  } finally {
    setLogQuiet(false);
  }
});
