/**
 * Tracking commands per second over real HTTP on loopback, KV in a temp file, with
 * `clientsConcurrent` clients in this process each sending one command at a time to a server process:
 *   group — the real tracker process (tracker/main.ts): marks merged per segment, one committer
 *   naive — this file run with `--serve-naive`: the same validation, but each request reads its
 *           segments and writes them back in its own atomic (optimistic check + retry); it keeps
 *           no mark sequence and no registration, which only flatters it
 * Two workloads: "spread" (random regions over 1024 segments) and "hot" (one segment).
 *
 *   deno run -A bench/tracker_bench.ts
 */
import { seededRandom as random } from "../src/random.ts";
import { newApiApp } from "../src/api_route.ts";
import { segmentPieces } from "../src/dirty_bitmap.ts";
import { regionsOf } from "../src/extent.ts";
import { type TrackRequest, trackRequest } from "../src/schemas.ts";
import { applyServiceBasics } from "../src/service.ts";
import { validate } from "../src/validate.ts";
import { TrackerClient } from "../tracker/client.ts";
import { startService } from "../harness/service_process.ts";
import { parseFlags, parsePort } from "../src/flags.ts";
import { dirtyKey, markedKey } from "../tracker/kv_layout.ts";
import { SegmentState } from "../tracker/segment_state.ts";

/** Concurrent clients. */
export const clientsConcurrent = 64;
/** How long each case runs. */
export const caseMs = 2000;
const regionBytes = 64 * 1024;
const volumeBytes = 1024 * 1024 * regionBytes; // 64 GiB: 1024 segments

/** The naive path: read-modify-write of each touched segment in its own atomic, per request. */
async function naiveMark(kv: Deno.Kv, req: TrackRequest, time: number): Promise<number> {
  let atomics = 0;
  for (const e of req.extents) {
    for (const [segment, bit, count] of segmentPieces(regionsOf(e.offset, e.length, regionBytes))) {
      const keys = [dirtyKey(req.volume, segment), markedKey(req.volume, segment)] as const;
      for (;;) {
        const [bits, record] = await kv.getMany<[Uint8Array, Uint8Array]>(keys);
        const stored = bits.value && record.value
          ? { bits: bits.value, record: record.value }
          : null;
        const state = SegmentState.decode(stored, `${req.volume}/${segment}`);
        state.mark(bit, count, time, 0);
        const next = state.encode()!;
        const res = await kv.atomic().check(bits).check(record)
          .set(keys[0], next.bits).set(keys[1], next.record).commit();
        atomics++;
        if (res.ok) break;
      }
    }
  }
  return atomics;
}

function naiveApp(kv: Deno.Kv, counter: { atomics: number }) {
  const app = newApiApp();
  applyServiceBasics(app, "naive-tracker");
  app.post("/v1/track", validate("json", trackRequest), async (c) => {
    const req = c.req.valid("json");
    const atomics = await naiveMark(kv, req, req.time ?? Date.now());
    counter.atomics += atomics;
    return c.json({ volume: req.volume, regionsMarked: 1, regionsNew: 0 });
  });
  return app;
}

interface CaseResult {
  commandsPerS: number;
  atomicsPerCommand: number;
}

/** Serves the naive path (this file run with `--serve-naive`), for the bench to measure. */
async function serveNaive(args: string[]): Promise<void> {
  const flags = parseFlags(args, {
    "serve-naive": { type: "boolean" },
    port: { type: "string" },
    kv: { type: "string" },
  });
  const kv = await Deno.openKv(flags.kv);
  const counter = { atomics: 0 };
  const app = naiveApp(kv, counter);
  app.get("/metrics", (c) => c.text(`naive_kv_atomics_total ${counter.atomics}\n`));
  Deno.serve({ port: parsePort(flags.port, 0), hostname: "127.0.0.1" }, app.fetch);
}

/** Reads an atomics counter from a /metrics text. */
async function atomicsOf(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = /^(?:tracker|naive)_kv_atomics_total (\d+)$/m.exec(text);
  return m ? Number(m[1]) : 0;
}

async function runCase(mode: "group" | "naive", workload: "spread" | "hot"): Promise<CaseResult> {
  const dir = await Deno.makeTempDir({ prefix: "tracker_bench_" });
  const kvPath = `${dir}/bench.kv`;
  const proc = mode === "group"
    ? await startService("tracker/main.ts", ["--kv", kvPath])
    : await startService("bench/tracker_bench.ts", ["--serve-naive", "--kv", kvPath]);
  try {
    await new TrackerClient(proc.url).registerVolume("vol", {
      sizeBytes: volumeBytes,
      regionBytes,
      ownerHost: "bench",
      ownerUrl: "http://127.0.0.1:1",
    }).catch((err) => {
      if (mode === "group") throw err; // the naive server has no registration
    });
    const regions = workload === "spread" ? volumeBytes / regionBytes : 1024;
    let commands = 0;
    const deadline = performance.now() + caseMs;
    const started = performance.now();
    await Promise.all(Array.from({ length: clientsConcurrent }, async (_, client) => {
      const next = random(client + 1);
      while (performance.now() < deadline) {
        const region = Math.floor(next() * regions);
        const res = await fetch(`${proc.url}/v1/track`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({
            volume: "vol",
            host: "bench",
            extents: [{ offset: region * regionBytes, length: 4096 }],
          }),
        });
        if (!res.ok) throw new Error(`${mode}: track answered ${res.status}: ${await res.text()}`);
        await res.body?.cancel();
        commands++;
      }
    }));
    const seconds = (performance.now() - started) / 1000;
    return {
      commandsPerS: commands / seconds,
      atomicsPerCommand: (await atomicsOf(proc.url)) / commands,
    };
  } finally {
    await proc.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

/** Runs every case; keys like `group_spread_cmds_per_s`, `naive_hot_atomics_per_cmd`. */
export async function benchTracker(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const workload of ["spread", "hot"] as const) {
    for (const mode of ["group", "naive"] as const) {
      const r = await runCase(mode, workload);
      out[`${mode}_${workload}_cmds_per_s`] = Math.round(r.commandsPerS);
      out[`${mode}_${workload}_atomics_per_cmd`] = Number(r.atomicsPerCommand.toFixed(4));
    }
  }
  return out;
}

if (import.meta.main) {
  if (Deno.args.includes("--serve-naive")) {
    await serveNaive(Deno.args);
  } else {
    const r = await benchTracker();
    console.log(
      `tracker: ${clientsConcurrent} concurrent clients, ${caseMs} ms a case, 4 KiB marks`,
    );
    console.log("workload  mode    commands/s  atomics/command");
    for (const workload of ["spread", "hot"]) {
      for (const mode of ["group", "naive"]) {
        const cmds = String(r[`${mode}_${workload}_cmds_per_s`]).padStart(10);
        const atomics = r[`${mode}_${workload}_atomics_per_cmd`].toFixed(4).padStart(15);
        console.log(`${workload.padEnd(8)}  ${mode.padEnd(6)}  ${cmds}  ${atomics}`);
      }
    }
  }
}
