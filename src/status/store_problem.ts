/** A tracker's store that does not answer, in the words `deno task status` shows. */
import type { StoreHealth } from "../schemas.ts";

/** "store: etcd no quorum: …" (the probe's error after the store's kind). */
export function storeProblem(store: StoreHealth): string {
  return `store: ${store.kind} ${store.error ?? "not ok"}`;
}
