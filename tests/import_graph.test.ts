/**
 * The repo's import graph, read from the source: no module may reach itself through imports (type
 * imports included: a type-only circle still ties two files together), and every edge respects the
 * rooms' layering (ARCHITECTURE.md): src/ is the ground floor, tracker/ and backup/ never see each
 * other nor host/, host/ talks to them only through their client.ts, harness/ starts processes by
 * path and sees no service's internals, and nothing outside tests/ imports tests/.
 */
import assert from "node:assert/strict";
import { dirname, join, normalize, relative } from "node:path";

const root = normalize(new URL("../", import.meta.url).pathname);
/** Directories never scanned: generated data and bench output. */
const skippedDirs = new Set([".git", "data", "node_modules", "results"]);

/**
 * Cycles known to exist in tracker/ while it is reorganised elsewhere; each entry is one cycle's
 * files, sorted and joined by " ". The lead empties this list once those cycles are gone.
 */

/** Relative specifiers a module's source imports or re-exports, static or dynamic. */
function relativeImports(source: string): string[] {
  const found: string[] = [];
  const patterns = [
    /^\s*(?:import|export)\b[^;]*?\bfrom\s*["'](\.{1,2}\/[^"']+)["']/gm,
    /^\s*import\s*["'](\.{1,2}\/[^"']+)["']/gm,
    /\bimport\(\s*["'](\.{1,2}\/[^"']+)["']\s*\)/g,
  ];
  for (const pattern of patterns) {
    for (const m of source.matchAll(pattern)) found.push(m[1]);
  }
  return found;
}

async function tsFiles(dir: string): Promise<string[]> {
  const files: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory && !skippedDirs.has(entry.name)) files.push(...await tsFiles(path));
    else if (entry.isFile && entry.name.endsWith(".ts")) files.push(path);
  }
  return files;
}

/** Every .ts file (repo-relative) and the repo files it imports. */
async function importGraph(): Promise<Map<string, string[]>> {
  const graph = new Map<string, string[]>();
  for (const path of await tsFiles(root)) {
    const from = relative(root, path);
    const targets = relativeImports(await Deno.readTextFile(path))
      .map((spec) => relative(root, join(dirname(path), spec)));
    graph.set(from, [...new Set(targets)]);
  }
  return graph;
}

/** Strongly connected components with more than one file, or a file importing itself (Tarjan). */
function cycles(graph: Map<string, string[]>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string) => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) !== index.get(v)) return;
    const component: string[] = [];
    for (let w = ""; w !== v;) {
      w = stack.pop()!;
      onStack.delete(w);
      component.push(w);
    }
    if (component.length > 1 || graph.get(v)!.includes(v)) found.push(component.sort());
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found;
}

const room = (path: string) => path.includes("/") ? path.slice(0, path.indexOf("/")) : "";
const isClient = (path: string) => path === "tracker/client.ts" || path === "backup/client.ts";

/** Inside tracker/: readers and state never stand on the committer, the façade or the edge. */
const trackerReaders = [
  "tracker/log_reader.ts",
  "tracker/activity_reader.ts",
  "tracker/map_reader.ts",
];
const isTrackerTop = (f: string) =>
  ["tracker_state.ts", "app.ts", "service.ts", "main.ts", "client.ts"].some((n) =>
    f === `tracker/${n}`
  ) || f.startsWith("tracker/routes/");
const isTrackerCommit = (f: string) => f.startsWith("tracker/commit/");

function forbiddenInTracker(from: string, to: string): string | undefined {
  if (isTrackerTop(from)) return undefined;
  if (isTrackerTop(to)) return "only the edge imports the façade and the edge";
  if (isTrackerCommit(from)) {
    return trackerReaders.includes(to) ? "the committer does not stand on a reader" : undefined;
  }
  if (isTrackerCommit(to)) return "readers and state do not stand on the committer";
  if (trackerReaders.includes(to) && !trackerReaders.includes(from)) {
    return "state files do not import readers";
  }
  return undefined;
}

/** Why `from` may not import `to`, or undefined when the edge is allowed. */
function forbidden(from: string, to: string): string | undefined {
  const a = room(from);
  const b = room(to);
  if (a === "tracker" && b === "tracker") return forbiddenInTracker(from, to);
  if (a === b) return undefined;
  if (b === "tests" && a !== "tests") return "only tests/ imports tests/";
  switch (a) {
    case "src":
      return "src/ is the ground floor and imports only src/";
    case "tracker":
      return b === "backup" || b === "host" ? "tracker/ never imports backup/ or host/" : undefined;
    case "backup":
      return b === "tracker" || b === "host"
        ? "backup/ never imports tracker/ or host/"
        : undefined;
    case "host":
      return (b === "tracker" || b === "backup") && !isClient(to)
        ? "host/ uses tracker/ and backup/ only through their client.ts"
        : undefined;
    case "harness":
      return b === "src" ? undefined : "harness/ imports only src/ (it starts services by path)";
  }
  return undefined;
}

Deno.test("the layering rules refuse what they should", () => {
  assert.match(forbidden("src/extent.ts", "host/app.ts") ?? "", /ground floor/);
  assert.match(forbidden("host/app.ts", "tracker/tracker_state.ts") ?? "", /client\.ts/);
  assert.equal(forbidden("host/app.ts", "tracker/client.ts"), undefined);
  assert.match(
    forbidden("tracker/log_reader.ts", "tracker/commit/batch_ops.ts") ?? "",
    /committer/,
  );
  assert.match(
    forbidden("tracker/commit/batch_commit.ts", "tracker/log_reader.ts") ?? "",
    /reader/,
  );
  assert.equal(forbidden("tracker/tracker_state.ts", "tracker/commit/group_commit.ts"), undefined);
});

Deno.test("the parser sees multi-line, type-only, re-exported and dynamic relative imports", () => {
  const source = `import assert from "node:assert/strict";
import {
  a,
  b,
} from "./multi_line.ts";
import type { T } from "../type_only.ts";
export { c } from "./re_export.ts";
import "./side_effect.ts";
const m = await import("./dynamic.ts");
// a word like important from "nowhere" is no import`;
  assert.deepEqual(relativeImports(source).sort(), [
    "../type_only.ts",
    "./dynamic.ts",
    "./multi_line.ts",
    "./re_export.ts",
    "./side_effect.ts",
  ]);
});

Deno.test("no module reaches itself through imports, type imports included", async () => {
  const graph = await importGraph();
  assert.ok(graph.has("src/extent.ts") && graph.has("start.ts"), "the walk found the repo's files");
  const found = cycles(graph).map((c) => c.join(" "));
  assert.deepEqual(found, [], "import cycles");
});

Deno.test("every import respects the rooms' layering", async () => {
  const graph = await importGraph();
  const bad: string[] = [];
  for (const [from, targets] of graph) {
    for (const to of targets) {
      const why = forbidden(from, to);
      if (why) bad.push(`${from} -> ${to}: ${why}`);
    }
  }
  assert.deepEqual(bad, []);
});

Deno.test("the layering rules reject what ARCHITECTURE.md forbids and allow the clients", () => {
  assert.ok(forbidden("src/schemas.ts", "host/client.ts"));
  assert.ok(forbidden("tracker/app.ts", "backup/client.ts"));
  assert.ok(forbidden("backup/app.ts", "tracker/client.ts"));
  assert.ok(forbidden("host/main.ts", "tracker/app.ts"));
  assert.ok(forbidden("harness/system.ts", "host/client.ts"));
  assert.ok(forbidden("bench/main.ts", "tests/support/memory_device.ts"));
  assert.equal(forbidden("host/main.ts", "tracker/client.ts"), undefined);
  assert.equal(forbidden("tests/x.test.ts", "tracker/app.ts"), undefined);
  assert.equal(forbidden("harness/system.ts", "src/random.ts"), undefined);
});
