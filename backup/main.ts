/**
 * The backup service process: `deno task backup -- --port 8702 --data ./data/backup`.
 *
 * Flags: --port P (8702), --hostname H (127.0.0.1), --data DIR (./data/backup; secondaries at
 * DIR/volumes/NAME.img, journal at DIR/journal), --journal-bytes-max SIZE (1GiB),
 * --batch-bytes-max SIZE (64MiB), --token T or --token-file PATH (or env TRACKMIRROR_TOKEN; it
 * guards the HTTP routes and the link's HELLO), --link-port P (8704: the host link,
 * src/link_protocol.ts, on --hostname), --link-socket PATH (also on a unix socket).
 * Test only: env TRACKMIRROR_FAULT_FILE (src/fault_file.ts) injects journal / secondary faults.
 * SIGTERM / SIGINT: stop accepting, finish the in-flight group, exit 0.
 */
import { parseSize } from "../src/extent.ts";
import { faultFileEnv, faultFileFromEnv } from "../src/fault_file.ts";
import { parseFlags, parsePort, runMain } from "../src/flags.ts";
import { backupBatchBytesMaxDefault } from "../src/limits.ts";
import { journalBytesMaxDefault, openBackup } from "./service.ts";
import { linkPortDefault } from "../src/link_protocol.ts";
import { resolveToken, tokenFlagOptions } from "../src/token.ts";

/** Default TCP port of the backup service. */
export const backupPortDefault = 8702;

function sizeFlag(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  try {
    const bytes = parseSize(text);
    if (bytes < 1) throw new RangeError(`Size "${text}" must be at least 1 byte`);
    return bytes;
  } catch (err) {
    throw new RangeError(`--${name}: ${(err as Error).message}`);
  }
}

async function main(): Promise<void> {
  const flags = parseFlags(Deno.args, {
    port: { type: "string" },
    hostname: { type: "string" },
    data: { type: "string" },
    "journal-bytes-max": { type: "string" },
    "batch-bytes-max": { type: "string" },
    ...tokenFlagOptions,
    "link-port": { type: "string" },
    "link-socket": { type: "string" },
  });
  const port = parsePort(flags.port, backupPortDefault);
  const hostname = flags.hostname ?? "127.0.0.1";
  const dataDir = flags.data ?? "./data/backup";
  const journalBytesMax = sizeFlag(
    "journal-bytes-max",
    flags["journal-bytes-max"],
    journalBytesMaxDefault,
  );
  const batchBytesMax = sizeFlag(
    "batch-bytes-max",
    flags["batch-bytes-max"],
    backupBatchBytesMaxDefault,
  );
  const token = resolveToken(flags);

  const linkPort = parsePort(flags["link-port"], linkPortDefault);
  const faults = faultFileFromEnv();
  if (faults) console.warn(`backup: test-only disk faults from ${faultFileEnv}=${faults.path}`);
  const backup = await openBackup({
    faults,
    dataDir,
    journalBytesMax,
    batchBytesMax,
    token,
    link: { hostname, port: linkPort, socketPath: flags["link-socket"] },
  });
  console.log(`backup: link listening on ${backup.link!.addresses.join(" and ")}`);
  const server = Deno.serve({
    port,
    hostname,
    onListen: ({ hostname, port }) => {
      console.log(
        `backup: listening on http://${hostname}:${port} (data ${dataDir}, ` +
          `journal-bytes-max ${journalBytesMax})`,
      );
    },
  }, backup.app.fetch);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`backup: ${signal}: finishing in-flight batches`);
    await server.shutdown();
    await backup.close();
    console.log("backup: stopped");
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGTERM", () => void stop("SIGTERM"));
  Deno.addSignalListener("SIGINT", () => void stop("SIGINT"));
  await server.finished;
}

if (import.meta.main) await runMain(main);
