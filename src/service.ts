/**
 * What every trackmirror HTTP service has in common: the one JSON error shape, a JSON 404,
 * bearer-token guarding when a token is set, `GET /healthz` (with the version and pid),
 * `GET /metrics`, and the API reference (`GET /openapi.json`, `GET /docs`: src/api_docs.ts).
 */
import type { OpenAPIHono } from "@hono/zod-openapi";
import { z } from "zod";
import { serveApiDocs } from "./api_docs.ts";
import { apiRoute, jsonResponse, textResponse } from "./api_route.ts";
import { type ErrorBody, errorBody, isPeerGone, ServiceError } from "./errors.ts";
import type { Metrics } from "./metrics.ts";
import { tokenMatcher } from "./token.ts";
import { version } from "./version.ts";
import { type EventService, eventServices, logLine } from "./events.ts";

export interface ServiceOptions {
  /** When set, every route but /healthz needs `Authorization: Bearer <token>`. */
  token?: string;
  metrics?: Metrics;
  /** One paragraph on what the service is, for its OpenAPI document. */
  description?: string;
}

/** `GET /healthz`. */
export const healthzResponse = z.object({
  ok: z.literal(true),
  service: z.string(),
  version: z.string(),
  /** Lets a launcher (start.ts) tell its own child's answer from another instance's. */
  pid: z.number().int(),
});

/** The event service a service name logs as (every service's name is one; others count as host). */
function service(name: string): EventService {
  return (eventServices as readonly string[]).includes(name) ? name as EventService : "host";
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Whether an `Authorization` header value presents `token` as `Bearer <token>`. */
export function bearerMatcher(
  token: string,
): (authorization: string | null | undefined) => boolean {
  const matches = tokenMatcher(token);
  return (authorization) => matches(/^Bearer (.*)$/s.exec(authorization ?? "")?.[1]);
}

/**
 * The one error body for a request that failed with `err`, logged as every service logs it: a
 * client gone mid-request is a 400 and a warning, an unexpected failure (500, 507) an error line.
 * `app.onError` answers with it, and so does a lean route that bypasses the router
 * (host/data_write_fast.ts), so both give the same answer.
 */
export function failureBody(name: string, err: unknown, method: string, path: string): ErrorBody {
  if (isPeerGone(err)) {
    // The client hung up before its request was read whole (e.g. it timed out while this
    // process was stopped): nobody will read the answer, and nothing was done with the request.
    const message = `The client closed the connection before the request was read: ${
      (err as Error).message
    }`;
    logLine(service(name), "warn", `${name}: ${method} ${path}: ${message}`);
    return { error: { status: 400, message } };
  }
  const body = errorBody(err);
  // An unexpected failure is logged with its stack; one we raised on purpose (a disk error
  // named in a ServiceError) needs only its message.
  if (body.error.status === 500 || body.error.status === 507) {
    const what = err instanceof ServiceError || !(err instanceof Error)
      ? errorText(err)
      : err.stack ?? err.message;
    logLine(service(name), "error", `${name}: ${method} ${path}: ${what}`);
  }
  return body;
}

/** Installs the shared behaviour on `app`; call before the service's own routes. */
export function applyServiceBasics(
  app: OpenAPIHono,
  name: string,
  opts: ServiceOptions = {},
): void {
  app.onError((err, c) => {
    const body = failureBody(name, err, c.req.method, c.req.path);
    return c.json(body, body.error.status as 400);
  });
  app.notFound((c) =>
    c.json(
      { error: { status: 404, message: `No route ${c.req.method} ${c.req.path}` } },
      404,
    )
  );
  // `pid` lets a launcher (start.ts) tell its own child's answer from another instance's on the
  // same port; `version` which build answers there.
  apiRoute(app, {
    method: "get",
    path: "/healthz",
    summary: "Liveness, version and pid (needs no token)",
    tags: ["service"],
    security: [],
    responses: { 200: jsonResponse(healthzResponse, "The service answers") },
  }, (c) => c.json({ ok: true as const, service: name, version, pid: Deno.pid }, 200));
  if (opts.token) {
    const bearerOk = bearerMatcher(opts.token);
    app.use("*", async (c, next) => {
      if (!bearerOk(c.req.header("authorization"))) {
        return c.json({ error: { status: 401, message: "Missing or wrong bearer token" } }, 401);
      }
      await next();
    });
  }
  serveApiDocs(app, {
    service: name,
    description: opts.description ?? `The trackmirror ${name} service.`,
    bearer: Boolean(opts.token),
  });
  if (opts.metrics) {
    const metrics = opts.metrics;
    metrics.gauge(
      `trackmirror_${name}_build_info`,
      `Always 1 while the ${name} answers: its version and the Deno runtime it runs on`,
      ["version", "deno"],
      (set) => set({ version, deno: Deno.version.deno }, 1),
    );
    apiRoute(app, {
      method: "get",
      path: "/metrics",
      summary: "Prometheus metrics (text exposition format)",
      tags: ["service"],
      responses: { 200: textResponse("The metrics", "text/plain; version=0.0.4") },
    }, async (c) => c.body(await metrics.render(), 200, { "content-type": metrics.contentType }));
  }
}
