/**
 * Summarizes V8 CPU profiles (`deno run --cpu-prof`): the functions with the most self time, the
 * functions with the most inclusive time, and self time by file. Percentages are of busy samples
 * (everything but "(idle)"); the idle share is shown separately.
 *
 *   deno run -A bench/cpu_profile.ts PROFILE_OR_DIR... [--top 25]
 *
 * A directory stands for every .cpuprofile under it (profiles are merged by function).
 */
import { parseArgs } from "node:util";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  startTime: number;
  endTime: number;
}

/** Sample counts of one or more profiles, by function. */
export interface ProfileSummary {
  samples: number;
  idleSamples: number;
  /** Wall time covered, ms. */
  durationMs: number;
  self: Map<string, number>;
  inclusive: Map<string, number>;
  selfByFile: Map<string, number>;
}

const root = new URL("../", import.meta.url).href;

function frameKey(f: CallFrame): string {
  const name = f.functionName || "(anonymous)";
  if (!f.url) return name;
  return `${name} ${shortUrl(f.url)}:${f.lineNumber + 1}`;
}

function shortUrl(url: string): string {
  if (url.startsWith(root)) return url.slice(root.length);
  const npm = /\/npm\/registry\.npmjs\.org\/(.+)$/.exec(url);
  if (npm) return `npm:${npm[1]}`;
  return url;
}

function fileOf(f: CallFrame): string {
  return f.url ? shortUrl(f.url) : f.functionName || "(anonymous)";
}

function add(m: Map<string, number>, k: string, n: number): void {
  m.set(k, (m.get(k) ?? 0) + n);
}

/** Adds one profile to `into` (a fresh summary when absent). */
export function summarize(p: CpuProfile, into?: ProfileSummary): ProfileSummary {
  const s = into ?? {
    samples: 0,
    idleSamples: 0,
    durationMs: 0,
    self: new Map(),
    inclusive: new Map(),
    selfByFile: new Map(),
  };
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const hits = new Map<number, number>();
  for (const id of p.samples) hits.set(id, (hits.get(id) ?? 0) + 1);
  s.samples += p.samples.length;
  s.durationMs += (p.endTime - p.startTime) / 1000;
  // Inclusive counts: a node's subtree, credited once per function on any root-to-leaf path.
  const totals = new Map<number, number>();
  const total = (id: number): number => {
    let t = totals.get(id);
    if (t !== undefined) return t;
    t = hits.get(id) ?? 0;
    for (const c of byId.get(id)!.children ?? []) t += total(c);
    totals.set(id, t);
    return t;
  };
  const rootNode = p.nodes[0];
  const walk = (id: number, onPath: Set<string>) => {
    const node = byId.get(id)!;
    const key = frameKey(node.callFrame);
    const self = hits.get(id) ?? 0;
    if (node.callFrame.functionName === "(idle)") s.idleSamples += self;
    else if (self > 0) {
      add(s.self, key, self);
      add(s.selfByFile, fileOf(node.callFrame), self);
    }
    const fresh = !onPath.has(key);
    if (fresh && id !== rootNode.id && node.callFrame.functionName !== "(idle)") {
      add(s.inclusive, key, total(id));
    }
    if (fresh) onPath.add(key);
    for (const c of node.children ?? []) walk(c, onPath);
    if (fresh) onPath.delete(key);
  };
  walk(rootNode.id, new Set());
  return s;
}

/** Reads every profile named (files, or directories searched for *.cpuprofile). */
export async function readProfiles(paths: string[]): Promise<ProfileSummary> {
  let s: ProfileSummary | undefined;
  const files: string[] = [];
  const collect = async (path: string) => {
    const info = await Deno.stat(path);
    if (info.isFile) files.push(path);
    else {
      for await (const e of Deno.readDir(path)) {
        const p = `${path}/${e.name}`;
        if (e.isDirectory || e.name.endsWith(".cpuprofile")) await collect(p);
      }
    }
  };
  for (const p of paths) await collect(p);
  if (files.length === 0) throw new Error(`No .cpuprofile under ${paths.join(", ")}`);
  for (const f of files) s = summarize(JSON.parse(await Deno.readTextFile(f)), s);
  return s!;
}

/** The summary as text: top self, top inclusive, self by file. */
export function formatSummary(s: ProfileSummary, top: number): string {
  const busy = s.samples - s.idleSamples;
  const pct = (n: number) => `${((n / busy) * 100).toFixed(1).padStart(5)}%`;
  const list = (m: Map<string, number>) =>
    [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, n]) => `  ${pct(n)}  ${k}`);
  return [
    `${s.samples} samples over ${(s.durationMs / 1000).toFixed(1)} s; idle ` +
    `${((s.idleSamples / s.samples) * 100).toFixed(1)}%; percentages below are of busy samples`,
    "self time:",
    ...list(s.self),
    "inclusive time:",
    ...list(s.inclusive),
    "self time by file:",
    ...list(s.selfByFile),
  ].join("\n");
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    options: { top: { type: "string" } },
    allowPositionals: true,
  });
  if (positionals.length === 0) {
    console.error("Usage: deno run -A bench/cpu_profile.ts PROFILE_OR_DIR... [--top 25]");
    Deno.exit(2);
  }
  console.log(formatSummary(await readProfiles(positionals), Number(values.top ?? 25)));
}
