/**
 * What the tracker's `--kv` names: a Deno KV (a file path, `:memory:`, or an http(s) URL of a KV
 * Connect server) or an etcd cluster (`etcd://HOST:PORT[,HOST:PORT...][/NAMESPACE]`). Any other
 * `scheme://` is refused (a RangeError: exit 2 naming the value and the flag) rather than taken
 * for a relative path, which once made `--kv etcd://…` a directory named "etcd:".
 */
import { etcdNamespaceDefault } from "./etcd_store.ts";

/** Most etcd endpoints one `--kv` may list. */
export const etcdEndpointsMax = 16;

/** Where the tracker keeps its state. */
export type KvTarget =
  | { kind: "deno-kv"; path: string; remote: boolean }
  | { kind: "etcd"; endpoints: string[]; namespace: string };

const hostPort =
  /^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]):(\d{1,5})$/;

/** Parses the value of `flag` (e.g. "--kv"); throws a RangeError naming both when it is bad. */
export function parseKvTarget(value: string, flag = "--kv"): KvTarget {
  const bad = (why: string) => new RangeError(`${flag} "${value}" ${why}`);
  if (value === "") {
    throw bad("must be a file path, :memory:, an http(s) URL or etcd://HOST:PORT[,HOST:PORT...]");
  }
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(value)?.[1]?.toLowerCase();
  if (scheme === undefined) return { kind: "deno-kv", path: value, remote: false };
  if (scheme === "http" || scheme === "https") {
    return { kind: "deno-kv", path: value, remote: true };
  }
  if (scheme !== "etcd") {
    throw bad(
      `has an unknown scheme "${scheme}://": use a file path, :memory:, an http(s) URL of a ` +
        `KV Connect server, or etcd://HOST:PORT[,HOST:PORT...]`,
    );
  }
  const rest = value.slice("etcd://".length);
  const slash = rest.indexOf("/");
  const hosts = slash < 0 ? rest : rest.slice(0, slash);
  const path = slash < 0 ? "" : rest.slice(slash + 1);
  const endpoints = hosts.split(",");
  if (endpoints.length > etcdEndpointsMax) {
    throw bad(`lists ${endpoints.length} etcd endpoints; at most ${etcdEndpointsMax}`);
  }
  for (const e of endpoints) {
    const port = Number(hostPort.exec(e)?.[1]);
    if (!(port >= 1 && port <= 65535)) {
      throw bad(
        `has a bad etcd endpoint "${e}": want HOST:PORT (port 1 to 65535), as in ` +
          `etcd://127.0.0.1:2379,127.0.0.1:22379`,
      );
    }
  }
  if (new Set(endpoints).size !== endpoints.length) throw bad("lists an etcd endpoint twice");
  if (!/^[A-Za-z0-9._-]{0,64}$/.test(path)) {
    throw bad(`has a bad namespace "${path}": letters, digits, '.', '_', '-', at most 64`);
  }
  return { kind: "etcd", endpoints, namespace: path ? `${path}/` : etcdNamespaceDefault };
}
