/** Parses the host agent's `--volume NAME=PATH:SIZE` flag. */
import { parseSize } from "../src/extent.ts";
import { checkName } from "../src/schemas.ts";
import type { HostVolumeConfig } from "./agent/host_agent.ts";

/** `NAME=PATH:SIZE`, SIZE a byte count or with a binary suffix (64MiB, 1GiB); PATH may hold ':'. */
export function parseVolumeSpec(spec: string): HostVolumeConfig {
  const eq = spec.indexOf("=");
  const colon = spec.lastIndexOf(":");
  if (eq <= 0 || colon < eq + 2 || colon === spec.length - 1) {
    throw new RangeError(
      `--volume "${spec}" must look like NAME=PATH:SIZE, e.g. vol0=./data/vol0.img:1GiB`,
    );
  }
  const name = checkName("Volume", spec.slice(0, eq));
  const path = spec.slice(eq + 1, colon);
  let sizeBytes: number;
  try {
    sizeBytes = parseSize(spec.slice(colon + 1));
  } catch (err) {
    throw new RangeError(`--volume "${spec}": ${(err as Error).message}`);
  }
  if (sizeBytes <= 0) throw new RangeError(`--volume "${spec}": size must be more than 0 bytes`);
  return { name, path, sizeBytes };
}
