/**
 * The project's version, in one place: `--version` of every command prints it and every service's
 * `/healthz` answers it, so an operator can tell which build answers on a port.
 */
export const version = "0.11.0";
