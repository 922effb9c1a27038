/**
 * The backup's HTTP paths, in one table: the app registers its routes with these patterns and the
 * client (backup/client.ts) fills them in, so the two cannot drift apart. They are a contract with
 * deployed host agents: never change one.
 */

/** Route patterns (Hono syntax, `:name` a path parameter). */
export const backupRoutes = {
  openapi: "/openapi.json",
  volumes: "/v1/volumes",
  volume: "/v1/volumes/:name",
  writes: "/v1/volumes/:name/writes",
  checksums: "/v1/volumes/:name/checksums",
  points: "/v1/volumes/:name/points",
  status: "/v1/status",
  flush: "/v1/flush",
  link: "/v1/link",
  healthz: "/healthz",
} as const;

/** Parameters a route pattern names, e.g. `{ name: string }` for `/v1/volumes/:name`. */
type ParamsOf<P extends string> = P extends `${string}:${infer K}/${infer Rest}`
  ? { [key in K]: string } & ParamsOf<`/${Rest}`>
  : P extends `${string}:${infer K}` ? { [key in K]: string }
  : Record<never, never>;

/** The path of `route` with its parameters filled in, each URI-encoded. */
export function backupPath<P extends string>(route: P, params: ParamsOf<P>): string {
  const values = params as Record<string, string>;
  return route.replace(/:(\w+)/g, (_, key: string) => {
    const value = values[key];
    if (value === undefined) throw new RangeError(`Path ${route} needs parameter "${key}"`);
    return encodeURIComponent(value);
  });
}
