/**
 * A copy of this repository's working tree in a directory of the test's own: the files git knows
 * (tracked, and untracked ones not ignored, as they are on disk now), never `data/`, so a test can
 * run commands that use the default `./data` without touching the developer's. Outside a git
 * checkout (a source tarball) it copies the tree but for what .gitignore names.
 */
import { dirname, join, relative } from "node:path";

const root = new URL("../../", import.meta.url).pathname;
/** Never copied: git's own, generated data, bench output, installed packages. */
const skippedDirs = new Set([".git", "data", "results", "node_modules"]);
/** Files never copied outside git (the .gitignore patterns that are not directories). */
const skippedFile = /\.(img|cpuprofile)$/;

/** Copies the working tree into `dest` (created); returns how many files were copied. */
export async function copyWorkingTree(dest: string): Promise<number> {
  const paths = (await gitFiles()) ?? await treeFiles(root);
  let copied = 0;
  for (const path of new Set(paths)) {
    if (path.startsWith("data/")) continue;
    const from = join(root, path);
    const stat = await Deno.lstat(from).catch(() => undefined);
    if (!stat?.isFile) continue; // deleted in the working tree, or a symlink / submodule
    await Deno.mkdir(dirname(join(dest, path)), { recursive: true });
    await Deno.copyFile(from, join(dest, path));
    copied++;
  }
  return copied;
}

/** The files git lists, or undefined outside a git checkout (or without git). */
async function gitFiles(): Promise<string[] | undefined> {
  try {
    const out = await new Deno.Command("git", {
      args: ["ls-files", "-z", "--cached", "--others", "--exclude-standard"],
      cwd: root,
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).output();
    if (!out.success) return undefined;
    return new TextDecoder().decode(out.stdout).split("\0").filter((p) => p !== "");
  } catch {
    return undefined;
  }
}

async function treeFiles(dir: string): Promise<string[]> {
  const files: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (skippedDirs.has(entry.name)) continue; // .git is a file in a worktree
    if (entry.isDirectory) files.push(...await treeFiles(path));
    else if (entry.isFile && !skippedFile.test(entry.name)) files.push(relative(root, path));
  }
  return files;
}
