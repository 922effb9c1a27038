/**
 * A primary's generation sidecar (issue 9): a small JSON file beside the primary image,
 * `<primary>.trackmirror-gen.json`, holding the primary's own generation, the tracker
 * generation and mark sequence last seen, the secondary generation last paired, and the volume's
 * trust. Made at the first open (a new generation, nothing seen yet: the first connects adopt the
 * peers'), written atomically (src/atomic_json.ts) whenever it changes.
 *
 * A damaged sidecar, or one naming another volume, stops the open: guessing would either trust a
 * mirror that may differ or throw away a pairing. The message says how to start over.
 */
import { basename } from "node:path";
import { z } from "zod";
import { readJsonFile, writeJsonAtomic } from "../../src/atomic_json.ts";

/** Suffix of a primary's generation sidecar. */
export const primaryGenerationSuffix = ".trackmirror-gen.json";
/** Longest file name most file systems take (the sidecar's name must fit). */
export const fileNameBytesMax = 255;

export const trustState = z.enum(["trusted", "checksum-resync-needed", "split-brain"]);

/** What the sidecar holds (version 1). */
export const primarySidecar = z.object({
  version: z.literal(1),
  volume: z.string(),
  primaryGeneration: z.uuid(),
  trackerGeneration: z.string().nullable(),
  markSeq: z.number().int().nonnegative(),
  secondaryGeneration: z.string().nullable(),
  trust: trustState,
  trustReason: z.string().nullable(),
  /** When the trust last changed (ms since the epoch); null while trusted from the start. */
  trustSince: z.number().nullable(),
});
export type PrimarySidecar = z.infer<typeof primarySidecar>;

/** The sidecar path of the primary image at `primaryPath`; throws naming it when it cannot be. */
export function sidecarPathOf(primaryPath: string): string {
  const name = basename(primaryPath);
  if (name === "" || primaryPath.endsWith("/")) {
    throw new RangeError(`Primary path "${primaryPath}" names no file for a generation sidecar`);
  }
  const bytes = new TextEncoder().encode(name + primaryGenerationSuffix).length;
  if (bytes > fileNameBytesMax) {
    throw new RangeError(
      `Primary path "${primaryPath}": its generation sidecar's name would be ${bytes} bytes, ` +
        `over ${fileNameBytesMax}; use a shorter file name`,
    );
  }
  return primaryPath + primaryGenerationSuffix;
}

/** A new sidecar: a fresh primary generation, nothing seen yet, trusted. */
export function newSidecar(volume: string): PrimarySidecar {
  return {
    version: 1,
    volume,
    primaryGeneration: crypto.randomUUID(),
    trackerGeneration: null,
    markSeq: 0,
    secondaryGeneration: null,
    trust: "trusted",
    trustReason: null,
    trustSince: null,
  };
}

/**
 * Reads the sidecar of `volume`'s primary, making (and persisting) a new one when there is none.
 * Throws, naming the file and the way out, when it is damaged or belongs to another volume.
 */
export async function openSidecar(
  volume: string,
  primaryPath: string,
): Promise<{ path: string; sidecar: PrimarySidecar; created: boolean }> {
  const path = sidecarPathOf(primaryPath);
  const sidecar = await readSidecar(volume, primaryPath);
  if (sidecar) return { path, sidecar, created: false };
  const made = newSidecar(volume);
  await writeSidecar(path, made);
  return { path, sidecar: made, created: true };
}

/**
 * Reads the sidecar of `volume`'s primary; undefined when there is none. Throws, naming the file
 * and the way out, when it is damaged or belongs to another volume.
 */
export async function readSidecar(
  volume: string,
  primaryPath: string,
): Promise<PrimarySidecar | undefined> {
  const path = sidecarPathOf(primaryPath);
  const startOver = `restore it, or delete it to start a new generation (the volume then needs ` +
    `deno task reconstruct --volume ${volume} --checksum --discard-secondary)`;
  let json: unknown;
  try {
    json = await readJsonFile(path);
  } catch (err) {
    throw new Error(
      `Generation sidecar of volume "${volume}": ${(err as Error).message}; ${startOver}`,
    );
  }
  if (json === undefined) return undefined;
  const parsed = primarySidecar.safeParse(json);
  if (!parsed.success) {
    throw new Error(
      `Generation sidecar "${path}" of volume "${volume}" is damaged (${
        parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")
      }); ${startOver}`,
    );
  }
  if (parsed.data.volume !== volume) {
    throw new Error(
      `Generation sidecar "${path}" belongs to volume "${parsed.data.volume}", not "${volume}": ` +
        `serve this image under its own name, or ${startOver}`,
    );
  }
  return parsed.data;
}

/** Writes the sidecar atomically and durably. */
export async function writeSidecar(path: string, sidecar: PrimarySidecar): Promise<void> {
  await writeJsonAtomic(path, sidecar);
}
