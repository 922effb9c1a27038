/**
 * NBD authentication through the export name. Deno has no TLS-PSK (what nbdkit's `--tls-psk`
 * uses), so a client proves it holds the agent's token by naming the export `VOLUME/TOKEN`. Every
 * real client can say that: qemu, libnbd (nbdcopy, nbdsh, nbdinfo) and nbd-client take the export
 * name from the URI path after its first "/", percent-decoded, so
 * `nbd://127.0.0.1:10809/vol0/s3cret` opens volume `vol0` with token `s3cret` (a token holding
 * "%", "?", "#" or a space is percent-encoded in a URI). Volume names never hold "/"
 * (src/schemas.ts), so the first "/" always ends the volume; the token may hold any character.
 *
 * Without a token the export name is the volume name, exactly as before.
 */
import { tokenMatches } from "../../src/token.ts";

/** What separates the volume from the token in an authenticated export name. */
export const exportTokenSeparator = "/";

/** Which volume an export name opens, or why it opens none. */
export type ExportAccess =
  | { ok: true; volume: string }
  /** `reason` names neither the token presented nor the real one. */
  | { ok: false; reason: string };

/** Decides what `exportName` may open when the agent's token is `token` (undefined: no token). */
export function authorizeExport(exportName: string, token: string | undefined): ExportAccess {
  if (token === undefined) return { ok: true, volume: exportName };
  const at = exportName.indexOf(exportTokenSeparator);
  const volume = at < 0 ? exportName : exportName.slice(0, at);
  const presented = at < 0 ? undefined : exportName.slice(at + 1);
  // Compared even when absent, so a missing token takes as long as a wrong one.
  if (tokenMatches(presented, token)) return { ok: true, volume };
  return {
    ok: false,
    reason: presented === undefined
      ? `Export name carries no token: this server needs VOLUME${exportTokenSeparator}TOKEN`
      : `Export name carries a wrong token for VOLUME${exportTokenSeparator}TOKEN`,
  };
}
