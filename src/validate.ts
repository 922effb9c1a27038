/**
 * Validation at the edge of every service: a zod-validator whose failures become the one error
 * shape (400, a message naming the field and the value, and the zod issues).
 */
import { zValidator } from "@hono/zod-validator";
import type { ValidationTargets } from "hono";
import type { z } from "zod";
import { badRequest } from "./errors.ts";

/** Describes the first issue with the offending value, e.g. `extents.0.offset = -5: Too small`. */
export function describeIssues(issues: readonly z.core.$ZodIssue[], input: unknown): string {
  const first = issues[0];
  if (!first) return "Invalid input";
  const path = first.path.map(String).join(".");
  let value: unknown = input;
  for (const key of first.path) {
    value = value !== null && typeof value === "object"
      ? (value as Record<PropertyKey, unknown>)[key as PropertyKey]
      : undefined;
  }
  const shown = value === undefined ? "missing" : JSON.stringify(value)?.slice(0, 80);
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : "";
  return `${path || "body"} = ${shown}: ${first.message}${more}`;
}

/** `zValidator` with the shared error shape. */
export function validate<T extends z.ZodType, Target extends keyof ValidationTargets>(
  target: Target,
  schema: T,
) {
  return zValidator(target, schema, (result) => {
    if (!result.success) {
      const issues = result.error.issues;
      throw badRequest(`Invalid ${target}: ${describeIssues(issues, result.data)}`, issues);
    }
  });
}
