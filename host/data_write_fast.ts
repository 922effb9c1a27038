/**
 * A lean front door for the host's hottest request, `PUT /v1/volumes/{name}/data?offset=N`
 * (issue 8 item 6). Through the router, every write paid for Hono's route search and middleware
 * chain, the body limit, two zod validators and a `Context`; this takes the request before the
 * router does, checks it by hand and hands the body straight to the volume's write path.
 *
 * It takes only a request that every check of the documented route (host/app.ts) would pass:
 * the PUT form exactly (`?offset=` with 1–16 digits and nothing else), a served volume's plain
 * name, a `Content-Length` from 1 to `httpIoBytesMax` without `Transfer-Encoding`, a range inside
 * the volume and, when the host has a token, the right bearer. Anything else is declined
 * (`undefined`) and goes through the app, whose route answers it exactly as before: so the
 * contract, its error messages and the OpenAPI document keep one definition, and this path can
 * only answer what that route would have answered 204. Failures of the write itself (503 when
 * neither the backup nor the tracker acknowledged, 500/507 from the primary, a client gone
 * mid-body) get the one error body through `failureBody`, as `app.onError` gives it.
 */
import { checkRange } from "../src/extent.ts";
import { badRequest } from "../src/errors.ts";
import { httpIoBytesMax } from "../src/limits.ts";
import { bearerMatcher, failureBody } from "../src/service.ts";
import type { HostAgent, HostVolume } from "./agent/host_agent.ts";

/** Decimal digits an offset may have: the documented route's `^\d{1,16}$`. */
const offsetDigitsMax = 16;
/** Decimal digits a Content-Length this path takes may have (httpIoBytesMax is far below). */
const lengthDigitsMax = String(httpIoBytesMax).length;

const volumesPrefix = "/v1/volumes/";
const dataQuery = "/data?offset=";

/** The whole number in `text` from `start` to its end when it is 1..`digitsMax` digits; else -1. */
function decimalAt(text: string, start: number, digitsMax: number): number {
  const digits = text.length - start;
  if (digits < 1 || digits > digitsMax) return -1;
  let n = 0;
  for (let i = start; i < text.length; i++) {
    const d = text.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  // 16 digits can pass 2^53: such an offset is the documented route's 400 to give.
  return Number.isSafeInteger(n) ? n : -1;
}

/**
 * The lean PUT handler of `agent`'s volumes: a response (promise) for a request it takes,
 * `undefined` for one it leaves to the app. `service` names the host in error logs.
 */
export function dataWriteFast(
  agent: HostAgent,
  opts: { token?: string; service: string },
): (req: Request) => Promise<Response> | undefined {
  const { token, service } = opts;
  const bearerOk = token ? bearerMatcher(token) : undefined;
  return (req) => {
    if (req.method !== "PUT") return undefined;
    const url = req.url;
    const pathStart = url.indexOf("/", url.indexOf("://") + 3);
    if (pathStart < 0 || !url.startsWith(volumesPrefix, pathStart)) return undefined;
    const nameStart = pathStart + volumesPrefix.length;
    const nameEnd = url.indexOf("/", nameStart);
    if (nameEnd < 0 || !url.startsWith(dataQuery, nameEnd)) return undefined;
    const offset = decimalAt(url, nameEnd + dataQuery.length, offsetDigitsMax);
    if (offset < 0) return undefined;
    // Names were checked when the volume was served; one spelled with escapes is not found here.
    const v = agent.volume(url.slice(nameStart, nameEnd));
    if (!v) return undefined;
    const headers = req.headers;
    const lengthHeader = headers.get("content-length");
    if (lengthHeader === null || headers.has("transfer-encoding")) return undefined;
    const length = decimalAt(lengthHeader, 0, lengthDigitsMax);
    if (length < 1 || length > httpIoBytesMax) return undefined;
    if (offset + length > v.sizeBytes) return undefined;
    if (bearerOk && !bearerOk(headers.get("authorization"))) {
      return undefined;
    }
    return write(req, offset, v);
  };

  async function write(
    req: Request,
    offset: number,
    v: HostVolume,
  ): Promise<Response> {
    try {
      const data = await req.bytes();
      // The server reads exactly Content-Length bytes; checked again as the app route checks it.
      try {
        checkRange(offset, data.length, v.sizeBytes, `volume "${v.name}"`);
      } catch (err) {
        throw badRequest((err as Error).message);
      }
      await v.device.write(offset, data);
      return new Response(null, { status: 204 });
    } catch (err) {
      const url = req.url;
      const pathStart = url.indexOf("/", url.indexOf("://") + 3);
      const path = url.slice(pathStart, url.indexOf("?", pathStart));
      const body = failureBody(service, err, req.method, path);
      return Response.json(body, { status: body.error.status });
    }
  }
}
