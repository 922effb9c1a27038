/**
 * "Address already in use" that says which address and which flag: the operating system's message
 * names neither, and a user with two trackmirrors (or another program on 8701) needs both.
 */

/** A listener could not bind because another process holds its address. */
export class AddressInUseError extends Error {
  constructor(readonly address: string, readonly flag: string, readonly value: string | number) {
    super(
      `Address ${address} is already in use (${flag} ${value}): another process listens there ` +
        `(a trackmirror already running?); stop it or pass another ${flag}` +
        (address.startsWith("/") ? ` (or remove the file if nothing answers on it)` : ""),
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

/** Whether a process accepts connections on the unix socket at `path` right now. */
export async function socketAnswers(path: string): Promise<boolean> {
  try {
    (await Deno.connect({ transport: "unix", path })).close();
    return true;
  } catch {
    return false;
  }
}

/**
 * Readies `path` for a unix socket listener named by `flag`: a socket file nobody answers on (left
 * by a killed process) is removed; one a live process answers on is refused, naming the flag, so
 * a second instance never takes the socket away from the first.
 */
export async function claimSocketPath(path: string, flag: string): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return;
    throw err;
  }
  if (await socketAnswers(path)) throw new AddressInUseError(path, flag, path);
  if (!info.isSocket) {
    throw new RangeError(`${flag} "${path}" exists and is not a socket: pick another path`);
  }
  await Deno.remove(path);
}
