/**
 * The one way our typed clients call a service: a bounded timeout, the bearer token, and every
 * failure turned into a `ServiceCallError` that says whether the peer should be treated as offline.
 */
import type { ErrorBody } from "./errors.ts";

/** A failed call. `status` is 0 when no HTTP answer came (refused, reset, timed out). */
export class ServiceCallError extends Error {
  constructor(readonly status: number, message: string, readonly issues?: unknown) {
    super(message);
    this.name = "ServiceCallError";
  }
  /** True for what the host treats as the peer being offline: no answer, a timeout, 5xx, 503. */
  get offline(): boolean {
    return this.status === 0 || this.status >= 500;
  }
}

export interface HttpClientOptions {
  /** Bearer token sent with every request, when the service is guarded by one. */
  token?: string;
  /** Per-request bound; a request still unanswered then fails as offline. */
  timeoutMs?: number;
}

/** Default per-request bound. */
export const requestTimeoutMsDefault = 10_000;

/** Calls `baseUrl + path`; returns the response when 2xx, else throws ServiceCallError. */
export async function call(
  baseUrl: string,
  path: string,
  init: RequestInit & { json?: unknown },
  opts: HttpClientOptions = {},
): Promise<Response> {
  const headers = new Headers(init.headers);
  if (opts.token) headers.set("authorization", `Bearer ${opts.token}`);
  let body = init.body;
  if (init.json !== undefined) {
    headers.set("content-type", "application/json");
    body = JSON.stringify(init.json);
  }
  const timeoutMs = opts.timeoutMs ?? requestTimeoutMsDefault;
  let res: Response;
  try {
    res = await fetch(baseUrl + path, {
      ...init,
      headers,
      body,
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err) {
    const why = err instanceof DOMException && err.name === "TimeoutError"
      ? `no answer within ${timeoutMs} ms`
      : fetchFailure(err);
    throw new ServiceCallError(0, `${init.method ?? "GET"} ${baseUrl}${path} failed: ${why}`);
  }
  if (res.ok) return res;
  let answer: unknown;
  try {
    answer = await res.json();
  } catch {
    // Not JSON (a proxy, say); the status says enough.
  }
  throw statusError(`${init.method ?? "GET"} ${baseUrl}${path}`, res.status, answer);
}

/**
 * The error of a non-2xx answer to `what` ("METHOD URL"), with the message and zod issues of
 * `body` when it is our JSON error shape.
 */
export function statusError(what: string, status: number, body: unknown): ServiceCallError {
  const err = body as ErrorBody | undefined;
  const message = err?.error?.message ? `: ${err.error.message}` : "";
  return new ServiceCallError(status, `${what} answered ${status}${message}`, err?.error?.issues);
}

/**
 * Why a fetch got no answer, in the words of its cause when there is one: Deno's "fetch failed"
 * alone does not say whether the peer refused, reset or was not found (issue 11: an operator
 * reads this as a component's last error).
 */
function fetchFailure(err: unknown): string {
  const message = (err as Error).message;
  const cause = (err as { cause?: unknown }).cause;
  if (!(cause instanceof Error)) return message;
  // "error sending request for url (…): client error (Connect): tcp connect error: Connection
  // refused (os error 111)": the last part is the one that says what happened.
  const last = cause.message.split(": ").at(-1) ?? cause.message;
  return `${message}: ${last}`;
}

/** `call` that parses a JSON answer. */
export async function callJson<T>(
  baseUrl: string,
  path: string,
  init: RequestInit & { json?: unknown },
  opts?: HttpClientOptions,
): Promise<T> {
  const res = await call(baseUrl, path, init, opts);
  return (await res.json()) as T;
}
