/**
 * A lean front door for the tracker's hottest request, `POST /v1/track`: in tracking mode a host's
 * write to a region not yet marked waits for it. Through the router every command paid for Hono's
 * route search, the middleware chain (body limit, validator) and a `Context` on top of the KV
 * commit; this takes the request before the router does, validates the body with the route's own
 * zod schema and calls the route's own handler (track_routes.ts `track`).
 *
 * It takes only a request the documented route would accept as well-formed: `POST /v1/track`
 * without a query, `Content-Type: application/json`, a `Content-Length` from 1 to
 * `requestBodyBytesMax` without `Transfer-Encoding` and, when the tracker has a token, the right
 * bearer. Anything else is declined (`undefined`) before its body is read and goes through the
 * app. A body that is not valid JSON or fails the schema goes to the app too (rebuilt from the
 * bytes read), so every 400 keeps its one definition. Failures of the command itself (404, 409,
 * 503) get the one error body through `failureBody`, as `app.onError` gives it.
 */
import { failureBody } from "../../src/service.ts";
import { bearerMatcher } from "../../src/service.ts";
import { trackRequest } from "../../src/schemas.ts";
import type { RouteDeps } from "./route_deps.ts";
import { track } from "./track_routes.ts";

const trackPath = "/v1/track";
/** Decimal digits a Content-Length this path takes may have (the body bound is far below). */
const lengthDigitsMax = 9;

/** What the front door needs besides the routes' deps. */
export interface TrackFastOptions {
  /** When set, only a request with `Authorization: Bearer <token>` is taken. */
  token?: string;
  /** Largest body taken (the app's body limit); larger ones go to the app. */
  bodyBytesMax: number;
  /** The app's own fetch: answers a body this path read but will not take. */
  routed: (req: Request) => Response | Promise<Response>;
}

/** The whole number in `text` when it is 1..`digitsMax` decimal digits; else -1. */
function decimal(text: string, digitsMax: number): number {
  if (text.length < 1 || text.length > digitsMax) return -1;
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const d = text.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}

/** The path of `url` without scheme and authority, or "" when it has none. */
function pathOf(url: string): string {
  const start = url.indexOf("/", url.indexOf("://") + 3);
  return start < 0 ? "" : url.slice(start);
}

/**
 * The lean `POST /v1/track` handler: a response (promise) for a request it takes, `undefined`
 * for one it leaves to the app.
 */
export function trackFast(
  deps: RouteDeps,
  opts: TrackFastOptions,
): (req: Request) => Promise<Response> | undefined {
  const bearerOk = opts.token ? bearerMatcher(opts.token) : undefined;
  return (req) => {
    if (req.method !== "POST" || pathOf(req.url) !== trackPath) return undefined;
    const headers = req.headers;
    const type = headers.get("content-type");
    if (type === null || !/^application\/json\s*(;|$)/i.test(type)) return undefined;
    const lengthHeader = headers.get("content-length");
    if (lengthHeader === null || headers.has("transfer-encoding")) return undefined;
    const length = decimal(lengthHeader, lengthDigitsMax);
    if (length < 1 || length > opts.bodyBytesMax) return undefined;
    if (bearerOk && !bearerOk(headers.get("authorization"))) return undefined;
    return take(req);
  };

  async function take(req: Request): Promise<Response> {
    let text: string;
    try {
      text = await req.text();
    } catch (err) {
      const body = failureBody("tracker", err, req.method, trackPath);
      return Response.json(body, { status: body.error.status });
    }
    let parsed;
    try {
      parsed = trackRequest.safeParse(JSON.parse(text));
    } catch {
      parsed = undefined;
    }
    if (!parsed?.success) {
      return await opts.routed(
        new Request(req.url, { method: req.method, headers: req.headers, body: text }),
      );
    }
    try {
      return Response.json(await track(deps, parsed.data));
    } catch (err) {
      const body = failureBody("tracker", err, req.method, trackPath);
      return Response.json(body, { status: body.error.status });
    }
  }
}
