/**
 * "Address already in use" that says which address and which flag: the operating system's message
 * names neither, and a user with two trackmirrors (or another program on 8701) needs both.
 */

/** A listener could not bind because another process holds its address. */
export class AddressInUseError extends Error {
  constructor(readonly address: string, readonly flag: string, readonly value: string | number) {
    super(
      `Address ${address} is already in use (${flag} ${value}): another process listens there ` +
        `(a trackmirror already running?); stop it or pass another ${flag}`,
    );
    this.name = "AddressInUseError";
  }
}

/**
 * Runs `listen` (Deno.serve, Deno.listen or anything that binds) and turns the runtime's
 * AddrInUse into an AddressInUseError naming `address` and the flag that chose it.
 */
export function listenNaming<T>(
  where: { address: string; flag: string; value: string | number },
  listen: () => T,
): T {
  try {
    return listen();
  } catch (err) {
    throw naming(err, where);
  }
}

/** `err` itself, or an AddressInUseError naming `where` when `err` is the runtime's AddrInUse. */
export function naming(
  err: unknown,
  where: { address: string; flag: string; value: string | number },
): unknown {
  return err instanceof Deno.errors.AddrInUse
    ? new AddressInUseError(where.address, where.flag, where.value)
    : err;
}

/** Whether nothing listens on TCP `hostname:port` right now (a moment later it may). */
export function tcpPortFree(hostname: string, port: number): boolean {
  try {
    Deno.listen({ hostname, port, transport: "tcp" }).close();
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.AddrInUse) return false;
    throw err;
  }
}

/**
 * Throws an AddressInUseError naming `flag` when TCP `hostname:port` is taken: a service checks
 * before it opens its state, so a second instance fails before touching the first one's files.
 */
export function checkPortFree(hostname: string, port: number, flag: string): void {
  if (port !== 0 && !tcpPortFree(hostname, port)) {
    throw new AddressInUseError(`${hostname}:${port}`, flag, port);
  }
}
