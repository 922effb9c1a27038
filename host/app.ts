/**
 * The host agent's HTTP front-end: applications write and read volumes, operators read status and
 * start resync. Ranges are validated here, once, before any layer of the write path sees them.
 */
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { z } from "zod";
import { checkRange } from "../src/extent.ts";
import { badRequest, notFound, tooLarge } from "../src/errors.ts";
import { Metrics } from "../src/metrics.ts";
import { checkName } from "../src/schemas.ts";
import { applyServiceBasics } from "../src/service.ts";
import { validate } from "../src/validate.ts";
import type { HostAgent, HostVolume } from "./agent/host_agent.ts";

/** Largest write or read one HTTP request carries. */
export const httpIoBytesMax = 32 * 1024 * 1024;

const byteOffset = z.string().regex(/^\d{1,16}$/, "Must be a whole number of bytes").transform(
  Number,
).refine(Number.isSafeInteger, "Must be at most 2^53-1");

const writeQuery = z.object({ offset: byteOffset });
const readQuery = z.object({ offset: byteOffset, length: byteOffset });

export interface HostAppOptions {
  token?: string;
}

export function createHostApp(agent: HostAgent, opts: HostAppOptions = {}) {
  const metrics = new Metrics();
  const app = new Hono();
  applyServiceBasics(app, "host", { token: opts.token, metrics });
  metrics.counter(
    "trackmirror_host_writes_total",
    "Forked writes by outcome: backup (acknowledged by the backup), tracker (covered by a " +
      "tracker mark), failed (neither acknowledged; primary untouched)",
    ["volume", "outcome"],
    (set) => {
      for (const v of agent.volumes) {
        const n = v.fork?.counters;
        set({ volume: v.name, outcome: "backup" }, n?.viaBackup ?? 0);
        set({ volume: v.name, outcome: "tracker" }, n?.viaTracker ?? 0);
        set({ volume: v.name, outcome: "failed" }, n?.failed ?? 0);
      }
    },
  );
  metrics.gauge(
    "trackmirror_host_backup_up",
    "1 when the backup is online, 0 otherwise",
    [],
    (set) => set({}, agent.backupStatus.isOnline ? 1 : 0),
  );

  const volumeOf = (name: string): HostVolume => {
    try {
      checkName("Volume", name);
    } catch (err) {
      throw badRequest((err as Error).message);
    }
    const v = agent.volume(name);
    if (!v) throw notFound(`Volume "${name}" is not served by host "${agent.opts.hostId}"`);
    return v;
  };

  const checkedRange = (v: HostVolume, offset: number, length: number) => {
    try {
      checkRange(offset, length, v.sizeBytes, `volume "${v.name}"`);
    } catch (err) {
      throw badRequest((err as Error).message);
    }
  };

  app.get("/v1/status", (c) => c.json(agent.status()));

  app.put(
    "/v1/volumes/:name/data",
    bodyLimit({
      maxSize: httpIoBytesMax,
      onError: () => {
        throw tooLarge(`Write body exceeds ${httpIoBytesMax} bytes`);
      },
    }),
    validate("query", writeQuery),
    async (c) => {
      const v = volumeOf(c.req.param("name"));
      const { offset } = c.req.valid("query");
      const data = new Uint8Array(await c.req.arrayBuffer());
      checkedRange(v, offset, data.length);
      await v.device.write(offset, data);
      return c.body(null, 204);
    },
  );

  app.get("/v1/volumes/:name/data", validate("query", readQuery), async (c) => {
    const v = volumeOf(c.req.param("name"));
    const { offset, length } = c.req.valid("query");
    if (length > httpIoBytesMax) {
      throw tooLarge(`Read length ${length} exceeds ${httpIoBytesMax} bytes`);
    }
    checkedRange(v, offset, length);
    const data = await v.device.read(offset, length);
    return c.body(data as Uint8Array<ArrayBuffer>, 200, {
      "content-type": "application/octet-stream",
    });
  });

  app.post("/v1/volumes/:name/resync", (c) => {
    const v = volumeOf(c.req.param("name"));
    return c.json(agent.startResync(v.name), 202);
  });

  app.get("/v1/volumes/:name/resync", (c) => {
    const v = volumeOf(c.req.param("name"));
    return c.json(agent.resyncProgress(v.name));
  });

  return app;
}

export type HostApp = ReturnType<typeof createHostApp>;
