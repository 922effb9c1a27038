/**
 * How every service declares an HTTP route (issue 11): its app is an `OpenAPIHono`, a route is a
 * `createRoute` config (OpenAPI path syntax `/v1/volumes/{name}`, request schemas, responses), and
 * `apiRoute(app, route, handler)` both writes it into the app's OpenAPI document and registers the
 * handler behind validators built from the same zod schemas. So `GET /openapi.json` cannot
 * describe a request the route would validate differently.
 *
 * Validation goes through `validate()` (src/validate.ts), not @hono/zod-openapi's own `openapi()`
 * wiring: that one answers a body with a non-JSON content type 415 before the schema sees it,
 * where our routes have always answered 400 naming the missing field. Order: path parameters,
 * query, headers, JSON body; a route's `middleware` (e.g. a body limit) runs before all of them.
 *
 * Response helpers for what is not JSON: `binaryBody`/`binaryResponse`
 * (application/octet-stream), `textResponse` (text/plain), `htmlResponse` (text/html),
 * `eventStreamResponse` (server-sent events), `noContent` (204).
 */
import {
  OpenAPIHono,
  type RouteConfig,
  type RouteConfigToEnv,
  type RouteHandler,
} from "@hono/zod-openapi";
import type { Env, MiddlewareHandler } from "hono";
import { z } from "zod";
import { badRequest } from "./errors.ts";
import { describeIssues, validate } from "./validate.ts";

/**
 * A new app for a service or one of its sub-apps. Its `defaultHook` gives routes registered with
 * `app.openapi()` directly the same 400 shape as `apiRoute` (the 415 for a non-JSON body stays).
 */
export function newApiApp(): OpenAPIHono {
  return new OpenAPIHono({
    defaultHook: (result) => {
      if (!result.success) {
        const issues = result.error.issues;
        // @hono/zod-validator hands the hook the input as `data` on failure too.
        const input = (result as { data?: unknown }).data;
        throw badRequest(`Invalid ${result.target}: ${describeIssues(issues, input)}`, issues);
      }
    },
  });
}

/** Any app `apiRoute` can register on (its env may differ). */
// deno-lint-ignore no-explicit-any
type AnyApiApp = OpenAPIHono<any, any, any>;

/** Hono's `:param` form of an OpenAPI path `/a/{param}`. */
export function honoPath(openApiPath: string): string {
  return openApiPath.replaceAll(/\/{(.+?)}/g, "/:$1");
}

/** The OpenAPI form `/a/{param}` of a Hono path `/a/:param` (route tables kept in Hono syntax). */
export function openApiPath(honoPattern: string): string {
  return honoPattern.replaceAll(/:(\w+)/g, "{$1}");
}

/**
 * Registers `route` on `app`: in its OpenAPI document, and as a handler behind the route's
 * middleware and validators of its `params`, `query`, `headers` and `application/json` body.
 * A body that is not `required` (`optionalJsonBody`) is only documented: the handler reads and
 * checks it with the same schema itself (e.g. the host's resync body, which may be empty).
 */
export function apiRoute<R extends RouteConfig>(
  app: AnyApiApp,
  route: R,
  handler: RouteHandler<R, RouteConfigToEnv<R> & Env>,
): void {
  const { middleware, hide, ...doc } = route;
  if (!hide) app.openAPIRegistry.registerPath(doc);
  const validators: MiddlewareHandler[] = [];
  const request = route.request;
  if (request?.params instanceof z.ZodType) validators.push(validate("param", request.params));
  if (request?.query instanceof z.ZodType) validators.push(validate("query", request.query));
  if (request?.headers instanceof z.ZodType) validators.push(validate("header", request.headers));
  const media = request?.body?.required ? request.body.content?.["application/json"] : undefined;
  const json = media && "schema" in media ? media.schema : undefined;
  if (json instanceof z.ZodType) validators.push(validate("json", json));
  const before = middleware === undefined ? [] : [middleware].flat() as MiddlewareHandler[];
  const handlers = [...before, ...validators, handler as MiddlewareHandler];
  app.on([route.method.toUpperCase()], [honoPath(route.path)], ...handlers);
}

/** The one error body of every service (src/errors.ts), as a named component. */
export const errorBodySchema = z.object({
  error: z.object({
    status: z.number().int(),
    message: z.string(),
    issues: z.unknown().optional(),
  }),
}).openapi("Error");

/** The `{name}` path parameter's value in a docs example. */
export const exampleName = "db0";

/** `{ description, content: application/json schema }` of a JSON answer. */
export function jsonResponse<S extends z.ZodType>(schema: S, description: string) {
  return { description, content: { "application/json": { schema } } };
}

/** A JSON request body; `required` so a missing body is refused by its schema, as always. */
export function jsonBody<S extends z.ZodType>(schema: S, description?: string) {
  return { required: true, description, content: { "application/json": { schema } } };
}

/** An optional JSON request body: documented; the handler reads and checks it itself. */
export function optionalJsonBody<S extends z.ZodType>(schema: S, description?: string) {
  return { required: false, description, content: { "application/json": { schema } } };
}

/** Error answers of a route: status → when it is given. */
export function errorResponses<C extends number>(errors: Record<C, string>) {
  const out = {} as Record<
    C,
    { description: string; content: { "application/json": { schema: typeof errorBodySchema } } }
  >;
  for (const [code, description] of Object.entries(errors) as [string, string][]) {
    out[Number(code) as C] = jsonResponse(errorBodySchema, description);
  }
  return out;
}

const binarySchema = z.string().openapi({ type: "string", format: "binary" });

/** A raw byte body (`application/octet-stream`); the handler reads and checks it itself. */
export function binaryBody(description: string) {
  return {
    required: true,
    description,
    content: { "application/octet-stream": { schema: binarySchema } },
  };
}

/** A raw byte answer (`application/octet-stream`). */
export function binaryResponse(description: string) {
  return { description, content: { "application/octet-stream": { schema: binarySchema } } };
}

/** A text answer (`text/plain` unless `mediaType` says which, e.g. the Prometheus exposition). */
export function textResponse(description: string, mediaType = "text/plain") {
  return { description, content: { [mediaType]: { schema: z.string() } } };
}

/** An HTML page (`text/html`). */
export function htmlResponse(description: string) {
  return { description, content: { "text/html": { schema: z.string() } } };
}

/**
 * A stream of server-sent events (`text/event-stream`). `event`, when given, is the schema of one
 * event's `data` (JSON); OpenAPI 3.1 has no field for a stream's items, so it goes in the
 * extension `x-event-schema` (JSON Schema), where the docs page shows it.
 */
export function eventStreamResponse(description: string, event?: z.ZodType) {
  const schema = z.string().openapi({ description: "Server-sent events (`data:` lines of JSON)" });
  const media = event === undefined ? { schema } : { schema, "x-event-schema": eventSchema(event) };
  return { description, content: { "text/event-stream": media } };
}

/** `event` as JSON Schema, without the `$schema` line (it sits inside an OpenAPI document). */
function eventSchema(event: z.ZodType): Record<string, unknown> {
  const { $schema: _, ...schema } = z.toJSONSchema(event, { io: "output", unrepresentable: "any" });
  return schema;
}

/** An answer without a body. */
export function noContent(description: string) {
  return { description };
}
