/**
 * A secondary's generation (issue 9), kept in a sidecar beside its image,
 * `<data>/volumes/<name>.trackmirror-gen.json`:
 *
 *   generation        a random UUID made when the secondary is created: a host that paired with
 *                     another one knows this secondary was recreated or replaced
 *   writerGeneration  the primary generation that last wrote it (set by the first host that
 *                     registers with its primary generation; changed only by an explicit adopt,
 *                     `reconstruct --checksum --discard-secondary`), so a second primary that
 *                     registers sees it is not the writer (split brain)
 *
 * Written atomically (src/atomic_json.ts). An image found without a sidecar (made before
 * generations, or a crash between creating the image and its sidecar) gets a new generation and
 * no writer: the first host to register adopts it.
 */
import { join } from "node:path";
import { z } from "zod";
import { readJsonFile, writeJsonAtomic } from "../src/atomic_json.ts";

/** Suffix of a secondary's generation sidecar (beside `<name>.img`). */
export const secondaryGenerationSuffix = ".trackmirror-gen.json";

/** What the sidecar holds. */
export const secondaryGenerationRecord = z.object({
  generation: z.uuid(),
  writerGeneration: z.uuid().nullable(),
});
export type SecondaryGeneration = z.infer<typeof secondaryGenerationRecord>;

/** Path of the sidecar of volume `name` (a name that passed `checkName`) in `dir`. */
export function secondaryGenerationPath(dir: string, name: string): string {
  return join(dir, name + secondaryGenerationSuffix);
}

/** A fresh generation with no writer. */
export function newSecondaryGeneration(): SecondaryGeneration {
  return { generation: crypto.randomUUID(), writerGeneration: null };
}

/** Reads the sidecar; undefined when absent; throws naming the file when it is damaged. */
export async function readSecondaryGeneration(
  dir: string,
  name: string,
): Promise<SecondaryGeneration | undefined> {
  const path = secondaryGenerationPath(dir, name);
  const json = await readJsonFile(path);
  if (json === undefined) return undefined;
  const parsed = secondaryGenerationRecord.safeParse(json);
  if (!parsed.success) {
    throw new Error(`Generation sidecar "${path}" is damaged: ${parsed.error.message}`);
  }
  return parsed.data;
}

/** Writes the sidecar atomically and durably. */
export async function writeSecondaryGeneration(
  dir: string,
  name: string,
  gen: SecondaryGeneration,
): Promise<void> {
  await writeJsonAtomic(secondaryGenerationPath(dir, name), gen);
}

/**
 * The writer a registration by `primaryGeneration` leads to: the first primary to register
 * becomes the writer; another one does not replace it unless it `adopt`s (discarding what the
 * secondary holds that it does not). Pure: the caller persists a change.
 */
export function decideWriter(
  current: SecondaryGeneration,
  primaryGeneration: string,
  adopt: boolean,
): SecondaryGeneration {
  if (current.writerGeneration === primaryGeneration) return current;
  if (current.writerGeneration === null || adopt) {
    return { ...current, writerGeneration: primaryGeneration };
  }
  return current;
}
