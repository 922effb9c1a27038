/**
 * Settings shared by the property-based fuzzers (tests/fuzz_*.test.ts, fast-check): a fixed seed
 * by default, so CI runs the same cases every time, `TRACKMIRROR_SEED` to replay a failure (the
 * seed and the shrunk counterexample are printed by fast-check when a property fails), and
 * `TRACKMIRROR_FUZZ_RUNS` to multiply the number of cases for a longer run.
 */
import fc from "fast-check";

/** The seed used when `TRACKMIRROR_SEED` is not set. */
export const fuzzSeedDefault = 20261124;

/** The seed of this run. */
export function fuzzSeed(): number {
  const raw = Deno.env.get("TRACKMIRROR_SEED");
  if (raw === undefined || raw === "") return fuzzSeedDefault;
  const seed = Number(raw);
  if (!Number.isSafeInteger(seed)) {
    throw new RangeError(`TRACKMIRROR_SEED "${raw}" must be a whole number`);
  }
  return seed | 0;
}

/** How many times the default number of cases to run (`TRACKMIRROR_FUZZ_RUNS`, default 1). */
export function fuzzRunsFactor(): number {
  const raw = Deno.env.get("TRACKMIRROR_FUZZ_RUNS");
  if (raw === undefined || raw === "") return 1;
  const factor = Number(raw);
  if (!(factor > 0) || !Number.isFinite(factor)) {
    throw new RangeError(`TRACKMIRROR_FUZZ_RUNS "${raw}" must be a number > 0`);
  }
  return factor;
}

/** fast-check parameters for a property with `numRuns` cases by default. */
export function fuzzParams<T>(numRuns: number): fc.Parameters<T> {
  return {
    seed: fuzzSeed(),
    numRuns: Math.max(1, Math.round(numRuns * fuzzRunsFactor())),
    endOnFailure: false,
    verbose: fc.VerbosityLevel.Verbose,
  };
}

/** Checks `property` with `fuzzParams` and logs the cases run and the time taken. */
export async function fuzz<T>(
  name: string,
  property: fc.IAsyncPropertyWithHooks<T> | fc.IPropertyWithHooks<T>,
  numRuns: number,
): Promise<void> {
  const params = fuzzParams<T>(numRuns);
  const started = performance.now();
  await fc.assert(property as fc.IAsyncPropertyWithHooks<T>, params);
  const ms = Math.round(performance.now() - started);
  console.log(`fuzz ${name}: ${params.numRuns} cases, seed ${params.seed}, ${ms} ms`);
}
