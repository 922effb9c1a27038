/**
 * The tracker's rooms and what each may import (ARCHITECTURE.md): the import graph of tracker/,
 * built from every `from "./…"` line (type-only imports included), has no circles, readers never
 * stand on the committer, and the committer never stands on a reader or the façade.
 */
import assert from "node:assert/strict";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const trackerDir = join(root, "tracker");

/** tracker/ files (relative to tracker/) and the tracker/ files each imports. */
async function importGraph(): Promise<Map<string, string[]>> {
  const graph = new Map<string, string[]>();
  async function walk(dir: string): Promise<void> {
    for await (const e of Deno.readDir(dir)) {
      const path = join(dir, e.name);
      if (e.isDirectory) await walk(path);
      else if (e.name.endsWith(".ts")) {
        const text = await Deno.readTextFile(path);
        const targets = [...text.matchAll(/from\s+"(\.{1,2}\/[^"]+)"/g)]
          .map((m) => relative(trackerDir, resolve(dirname(path), m[1])))
          .filter((t) => !t.startsWith(".."));
        graph.set(relative(trackerDir, path), targets);
      }
    }
  }
  await walk(trackerDir);
  return graph;
}

/** Every import circle, each as the path of files round it. */
function circles(graph: Map<string, string[]>): string[][] {
  const found: string[][] = [];
  const done = new Set<string>();
  const stack: string[] = [];
  function visit(file: string): void {
    const at = stack.indexOf(file);
    if (at >= 0) return void found.push([...stack.slice(at), file]);
    if (done.has(file)) return;
    stack.push(file);
    for (const next of graph.get(file) ?? []) visit(next);
    stack.pop();
    done.add(file);
  }
  for (const file of graph.keys()) visit(file);
  return found;
}

const readers = ["log_reader.ts", "activity_reader.ts"];
const facadeAndEdge = ["tracker_state.ts", "app.ts", "service.ts", "main.ts", "client.ts"];
const isFacadeOrEdge = (f: string) => facadeAndEdge.includes(f) || f.startsWith("routes/");

Deno.test("tracker/ has no import circles, type-only imports included", async () => {
  assert.deepEqual(circles(await importGraph()), []);
});

Deno.test("the circle finder reports a circle it is shown", () => {
  const graph = new Map([["a.ts", ["b.ts"]], ["b.ts", ["a.ts"]]]);
  assert.deepEqual(circles(graph), [["a.ts", "b.ts", "a.ts"]]);
});

Deno.test("readers and state files do not import the committer, the façade or the edge", async () => {
  for (const [file, targets] of await importGraph()) {
    if (file.startsWith("commit/") || isFacadeOrEdge(file)) continue;
    for (const t of targets) {
      assert.ok(!t.startsWith("commit/"), `${file} imports ${t}`);
      assert.ok(!isFacadeOrEdge(t), `${file} imports ${t}`);
      if (!readers.includes(file)) assert.ok(!readers.includes(t), `${file} imports ${t}`);
    }
  }
});

Deno.test("the committer does not import readers, the façade or the edge", async () => {
  for (const [file, targets] of await importGraph()) {
    if (!file.startsWith("commit/")) continue;
    for (const t of targets) {
      assert.ok(!readers.includes(t) && !isFacadeOrEdge(t), `${file} imports ${t}`);
    }
  }
});
