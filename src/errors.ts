/**
 * Errors that carry an HTTP status. Every service turns them into the same JSON shape
 * `{ error: { status, message, issues? } }`, so a client sees one error format everywhere.
 */
export class ServiceError extends Error {
  constructor(
    readonly status: 400 | 401 | 404 | 409 | 413 | 500 | 503 | 507,
    message: string,
    readonly issues?: unknown,
  ) {
    super(message);
    this.name = "ServiceError";
  }
}

/** Bad input: a value outside what the API accepts. */
export const badRequest = (message: string, issues?: unknown) =>
  new ServiceError(400, message, issues);
/** A missing or wrong token. */
export const unauthorized = (message: string) => new ServiceError(401, message);
/** The named thing does not exist. */
export const notFound = (message: string) => new ServiceError(404, message);
/** The request conflicts with current state (e.g. a lease held by another host). */
export const conflict = (message: string) => new ServiceError(409, message);
/** A body or range larger than the stated bound. */
export const tooLarge = (message: string) => new ServiceError(413, message);
/**
 * A write the disk refused: 507 (Insufficient Storage) for ENOSPC, 500 for EIO and the rest.
 * `code` keeps the errno name, so the NBD front-end can answer NBD_ENOSPC / NBD_EIO.
 */
export class DiskWriteError extends ServiceError {
  constructor(readonly code: "ENOSPC" | "EIO", message: string) {
    super(code === "ENOSPC" ? 507 : 500, message);
    this.name = "DiskWriteError";
  }
}

/** Temporarily unable to accept work (backpressure); retry later. */
export const unavailable = (message: string) => new ServiceError(503, message);

/**
 * True for the errors that only mean the peer went away (closed or reset the connection, e.g. a
 * client that timed out while this process was stopped): an expected condition, worth one plain
 * log line, never a stack trace.
 */
export function isPeerGone(err: unknown): boolean {
  return err instanceof Deno.errors.BadResource || err instanceof Deno.errors.Interrupted ||
    err instanceof Deno.errors.ConnectionReset || err instanceof Deno.errors.BrokenPipe ||
    err instanceof Deno.errors.ConnectionAborted || err instanceof Deno.errors.NotConnected ||
    err instanceof Deno.errors.UnexpectedEof;
}

/** The JSON body every service answers an error with. */
export interface ErrorBody {
  error: { status: number; message: string; issues?: unknown };
}

/** Builds the one error shape from anything thrown; never exposes a stack trace. */
export function errorBody(err: unknown): ErrorBody {
  if (err instanceof ServiceError) {
    return {
      error: {
        status: err.status,
        message: err.message,
        ...(err.issues ? { issues: err.issues } : {}),
      },
    };
  }
  // Framework errors (e.g. Hono's HTTPException for malformed JSON) carry their own status.
  const status = (err as { status?: unknown })?.status;
  const ownMessage = (err as { message?: unknown })?.message;
  const message = err instanceof Error
    ? err.message
    : typeof ownMessage === "string"
    ? ownMessage
    : String(err);
  if (typeof status === "number" && status >= 400 && status < 500) {
    return { error: { status, message } };
  }
  return { error: { status: 500, message: `Internal error: ${message}` } };
}
