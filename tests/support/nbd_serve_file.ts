/**
 * Serves one raw image file over NBD with the host's server, for client tests and measurements:
 *
 *   deno run -A tests/support/nbd_serve_file.ts --image IMG --size BYTES --name NAME --port PORT
 *     [--socket PATH]
 *
 * Prints "ready <port>" once listening; stops cleanly on SIGTERM / SIGINT.
 */
import { parseArgs } from "node:util";
import { FileVolume } from "../../host/fork/file_volume.ts";
import { serveNbd } from "../../host/nbd/server.ts";

const { values } = parseArgs({
  options: {
    image: { type: "string" },
    size: { type: "string" },
    name: { type: "string", default: "vol0" },
    port: { type: "string", default: "0" },
    socket: { type: "string" },
  },
});
if (!values.image || !values.size) throw new Error("--image and --size are required");

const volume = await FileVolume.open(values.image, Number(values.size));
const server = serveNbd({
  lookup: (name) => name === values.name ? volume : undefined,
  listExports: () => [values.name!],
  port: Number(values.port),
  socketPath: values.socket,
});
console.log(`ready ${server.port}`);

const stop = async () => {
  await server.close();
  await volume.close();
  Deno.exit(0);
};
Deno.addSignalListener("SIGTERM", stop);
Deno.addSignalListener("SIGINT", stop);
