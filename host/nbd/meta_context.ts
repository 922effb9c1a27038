/**
 * The metadata contexts this server offers for NBD_CMD_BLOCK_STATUS, and how the queries of
 * NBD_OPT_LIST_META_CONTEXT and NBD_OPT_SET_META_CONTEXT select them (proto.md, "Metadata
 * querying"). Pure: no I/O, no state.
 *
 * - `base:allocation` (every export): NBD_STATE_ZERO for runs that read as zeroes. NBD_STATE_HOLE
 *   is never claimed: Deno offers no SEEK_DATA / SEEK_HOLE, so the server cannot know what the
 *   file system allocated, and HOLE may only be set when it is known (block_status.ts).
 * - `trackmirror:dirty` (exports with a dirty record): state 1 (`TrackmirrorState.DIRTY`) for
 *   bytes the primary may hold and the backup's secondary may not: marked at the tracker, or
 *   written and not yet acknowledged by the backup. Clear (0) means the secondary holds what the
 *   primary holds. `trackmirror` is not a namespace registered with the NBD project.
 */

/** `base:allocation` status flags. */
export const NbdState = { HOLE: 1 << 0, ZERO: 1 << 1 } as const;

/** `trackmirror:dirty` status flags. */
export const TrackmirrorState = { DIRTY: 1 << 0 } as const;

/** A context an export offers; its id is fixed, so ids stay unique within any selection. */
export interface MetaContext {
  id: number;
  name: string;
}

export const baseAllocation: MetaContext = { id: 1, name: "base:allocation" };
export const trackmirrorDirty: MetaContext = { id: 2, name: "trackmirror:dirty" };

/** Namespace of a context name or query ("base" of "base:allocation"); undefined without ":". */
const namespaceOf = (s: string): string | undefined => {
  const at = s.indexOf(":");
  return at <= 0 ? undefined : s.slice(0, at);
};

/**
 * NBD_OPT_LIST_META_CONTEXT: every offered context for no query; else those each query names
 * exactly or by its namespace with an empty leaf ("base:" lists `base:allocation`). Queries of
 * unknown namespaces, and those without a colon, match nothing.
 */
export function listContexts(offered: readonly MetaContext[], queries: string[]): MetaContext[] {
  if (queries.length === 0) return [...offered];
  return offered.filter((c) =>
    queries.some((q) => q === c.name || (q.endsWith(":") && namespaceOf(q) === namespaceOf(c.name)))
  );
}

/**
 * NBD_OPT_SET_META_CONTEXT: the offered contexts some query names exactly. Wildcards ("base:")
 * select nothing and unknown names are ignored, as the spec asks; no query selects nothing.
 */
export function selectContexts(offered: readonly MetaContext[], queries: string[]): MetaContext[] {
  return offered.filter((c) => queries.includes(c.name));
}
