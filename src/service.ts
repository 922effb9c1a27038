/**
 * What every trackmirror HTTP service has in common: the one JSON error shape, a JSON 404,
 * bearer-token guarding when a token is set, `GET /healthz` (with the version and pid) and
 * `GET /metrics`.
 */
import type { Hono } from "hono";
import { errorBody, isPeerGone, ServiceError } from "./errors.ts";
import type { Metrics } from "./metrics.ts";
import { tokenMatches } from "./token.ts";
import { version } from "./version.ts";
import { type EventService, eventServices, logLine } from "./events.ts";

export interface ServiceOptions {
  /** When set, every route but /healthz needs `Authorization: Bearer <token>`. */
  token?: string;
  metrics?: Metrics;
}

/** The event service a service name logs as (every service's name is one; others count as host). */
function service(name: string): EventService {
  return (eventServices as readonly string[]).includes(name) ? name as EventService : "host";
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Installs the shared behaviour on `app`; call before the service's own routes. */
export function applyServiceBasics(app: Hono, name: string, opts: ServiceOptions = {}): void {
  app.onError((err, c) => {
    if (isPeerGone(err)) {
      // The client hung up before its request was read whole (e.g. it timed out while this
      // process was stopped): nobody will read the answer, and nothing was done with the request.
      const message = `The client closed the connection before the request was read: ${
        (err as Error).message
      }`;
      logLine(service(name), "warn", `${name}: ${c.req.method} ${c.req.path}: ${message}`);
      return c.json({ error: { status: 400, message } }, 400);
    }
    const body = errorBody(err);
    // An unexpected failure is logged with its stack; one we raised on purpose (a disk error
    // named in a ServiceError) needs only its message.
    if (body.error.status === 500 || body.error.status === 507) {
      const what = err instanceof ServiceError || !(err instanceof Error)
        ? errorText(err)
        : err.stack ?? err.message;
      logLine(service(name), "error", `${name}: ${c.req.method} ${c.req.path}: ${what}`);
    }
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
  app.get("/healthz", (c) => c.json({ ok: true, service: name, version, pid: Deno.pid }));
  if (opts.token) {
    const token = opts.token;
    app.use("*", async (c, next) => {
      const presented = /^Bearer (.*)$/s.exec(c.req.header("authorization") ?? "")?.[1];
      if (!tokenMatches(presented, token)) {
        return c.json({ error: { status: 401, message: "Missing or wrong bearer token" } }, 401);
      }
      await next();
    });
  }
  if (opts.metrics) {
    const metrics = opts.metrics;
    app.get(
      "/metrics",
      async (c) => c.text(await metrics.render(), 200, { "content-type": metrics.contentType }),
    );
  }
}
