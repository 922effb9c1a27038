/**
 * The host agent's HTTP front-end: applications write and read volumes, operators read status and
 * start resync. One sub-app per resource, joined with `app.route`. Ranges are validated here, once,
 * before any layer of the write path sees them.
 */
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { z } from "zod";
import { checkRange } from "../src/extent.ts";
import { badRequest, notFound, tooLarge } from "../src/errors.ts";
import { componentState } from "../src/host_schemas.ts";
import { Metrics } from "../src/metrics.ts";
import { volumeParams } from "../src/schemas.ts";
import { applyServiceBasics } from "../src/service.ts";
import { describeIssues, validate } from "../src/validate.ts";
import { resyncRequest, type ResyncRequestBody, trustView } from "../src/host_schemas.ts";
import type { HostAgent, HostVolume } from "./agent/host_agent.ts";
import { hostEventRoutes } from "./event_routes.ts";

/** Largest write or read one HTTP request carries. */
export { httpIoBytesMax } from "../src/limits.ts";
import { httpIoBytesMax } from "../src/limits.ts";

/** The host's routes, in one place for the app and its client. */
export const hostPaths = {
  status: "/v1/status",
  data: (volume: string) => `/v1/volumes/${encodeURIComponent(volume)}/data`,
  resync: (volume: string) => `/v1/volumes/${encodeURIComponent(volume)}/resync`,
  verify: (volume: string) => `/v1/volumes/${encodeURIComponent(volume)}/verify`,
  cycle: (volume: string) => `/v1/volumes/${encodeURIComponent(volume)}/cycle`,
  events: "/v1/events",
} as const;

const byteOffset = z.string().regex(/^\d{1,16}$/, "Must be a whole number of bytes").transform(
  Number,
).refine(Number.isSafeInteger, "Must be at most 2^53-1");

const writeQuery = z.object({ offset: byteOffset });
const readQuery = z.object({ offset: byteOffset, length: byteOffset });

export interface HostAppOptions {
  token?: string;
}

/** The volume `name` served by `agent`; 404 naming it and the host otherwise. */
function volumeOf(agent: HostAgent, name: string): HostVolume {
  const v = agent.volume(name);
  if (!v) throw notFound(`Volume "${name}" is not served by host "${agent.opts.hostId}"`);
  return v;
}

/** 400 naming the values unless the range lies inside the volume. */
function checkedRange(v: HostVolume, offset: number, length: number): void {
  try {
    checkRange(offset, length, v.sizeBytes, `volume "${v.name}"`);
  } catch (err) {
    throw badRequest((err as Error).message);
  }
}

/** `GET /v1/status`. */
function statusApp(agent: HostAgent) {
  return new Hono().get("/", (c) => c.json(agent.status()));
}

/** `PUT|GET /v1/volumes/:name/data`: application writes and reads. */
function dataApp(agent: HostAgent) {
  return new Hono()
    .put(
      "/",
      bodyLimit({
        maxSize: httpIoBytesMax,
        onError: () => {
          throw tooLarge(`Write body exceeds ${httpIoBytesMax} bytes`);
        },
      }),
      validate("query", writeQuery),
      validate("param", volumeParams),
      async (c) => {
        const v = volumeOf(agent, c.req.valid("param").name);
        const { offset } = c.req.valid("query");
        const data = new Uint8Array(await c.req.arrayBuffer());
        checkedRange(v, offset, data.length);
        await v.device.write(offset, data);
        return c.body(null, 204);
      },
    )
    .get("/", validate("query", readQuery), validate("param", volumeParams), async (c) => {
      const v = volumeOf(agent, c.req.valid("param").name);
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
}

/** Largest resync request body (it is a few flags). */
const resyncBodyBytesMax = 4096;

/** The optional JSON body of a resync request; an empty body is a plain resync. */
async function resyncBody(req: Request): Promise<ResyncRequestBody> {
  const text = await req.text();
  if (text.length > resyncBodyBytesMax) {
    throw tooLarge(`Resync request body of ${text.length} bytes exceeds ${resyncBodyBytesMax}`);
  }
  if (text.trim() === "") return {};
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw badRequest(`Resync request body ${JSON.stringify(text.slice(0, 80))} is not JSON`);
  }
  const parsed = resyncRequest.safeParse(json);
  if (!parsed.success) {
    throw badRequest(
      `Invalid json: ${describeIssues(parsed.error.issues, json)}`,
      parsed.error.issues,
    );
  }
  return parsed.data;
}

/** `POST|GET /v1/volumes/:name/resync`: start a resync, read its progress. */
function resyncApp(agent: HostAgent) {
  return new Hono()
    .post("/", validate("param", volumeParams), async (c) => {
      const v = volumeOf(agent, c.req.valid("param").name);
      const body = await resyncBody(c.req.raw);
      return c.json(await agent.requestResync(v.name, body), 202);
    })
    .get("/", validate("param", volumeParams), (c) => {
      const v = volumeOf(agent, c.req.valid("param").name);
      return c.json(agent.resyncProgress(v.name));
    });
}

/** Largest body read by a job route that takes none (verify, cycle): any non-empty one is refused. */
const jobBodyBytesMax = 4096;

/**
 * `POST|GET /v1/volumes/:name/{verify,cycle}`: a job of the volume that takes no body (a body is
 * refused, so options sent to an agent that does not know them are never silently ignored).
 * POST starts it (202 with its progress), GET reads its progress. `what` names it in errors.
 */
function jobApp(
  agent: HostAgent,
  what: "Verify" | "Cycle",
  start: (name: string) => unknown,
  progress: (name: string) => unknown,
) {
  return new Hono()
    .post(
      "/",
      bodyLimit({
        maxSize: jobBodyBytesMax,
        onError: () => {
          throw tooLarge(`${what} request body exceeds ${jobBodyBytesMax} bytes`);
        },
      }),
      validate("param", volumeParams),
      async (c) => {
        const v = volumeOf(agent, c.req.valid("param").name);
        const body = await c.req.text();
        if (body.trim() !== "") {
          throw badRequest(
            `${what} request of volume "${v.name}" takes no body; got ` +
              `${JSON.stringify(body.slice(0, 80))}`,
          );
        }
        return c.json(start(v.name), 202);
      },
    )
    .get("/", validate("param", volumeParams), (c) => {
      const v = volumeOf(agent, c.req.valid("param").name);
      return c.json(progress(v.name));
    });
}

/** Online verify: start one, read its progress and findings. */
function verifyApp(agent: HostAgent) {
  return jobApp(agent, "Verify", (n) => agent.startVerify(n), (n) => agent.verifyProgress(n));
}

/**
 * Cycle mode (issue 10): run one cycle now (409 while one runs or for a journal-mode volume),
 * read the latest cycle's progress and the schedule.
 */
function cycleApp(agent: HostAgent) {
  return jobApp(agent, "Cycle", (n) => agent.startCycle(n), (n) => agent.cycleProgress(n));
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
    "trackmirror_host_volume_trust",
    "1 for the volume's trust state, 0 for the others (issue 9): trusted, checksum-resync-needed " +
      "(the tracker's record was lost or is older, or the secondary was replaced), split-brain",
    ["volume", "trust"],
    (set) => {
      for (const v of agent.volumes) {
        for (const trust of trustView.options) {
          set({ volume: v.name, trust }, v.trust.trust === trust ? 1 : 0);
        }
      }
    },
  );
  metrics.gauge(
    "trackmirror_host_backup_up",
    "1 when the backup is online, 0 otherwise",
    [],
    (set) => set({}, agent.backupStatus.isOnline ? 1 : 0),
  );
  metrics.gauge(
    "trackmirror_host_backup_state",
    "1 for the backup's current state in this host's status table, 0 for the others " +
      "(degraded: it answers but cannot take writes)",
    ["state"],
    (set) => {
      const current = agent.backupStatus.state;
      for (const state of componentState.options) set({ state }, state === current ? 1 : 0);
    },
  );
  metrics.counter(
    "trackmirror_host_cycles_committed_total",
    "Cycles of cycle-mode volumes committed at the backup since the agent started",
    ["volume"],
    (set) => {
      for (const v of agent.volumes) {
        if (v.cycles) set({ volume: v.name }, v.cycles.progress.cyclesCommitted);
      }
    },
  );
  metrics.counter(
    "trackmirror_host_cycle_shipped_bytes_total",
    "Bytes cycles of cycle-mode volumes shipped to the backup (walker and copy-before-write)",
    ["volume"],
    (set) => {
      for (const v of agent.volumes) {
        if (v.cycles) set({ volume: v.name }, v.cycles.progress.bytesShippedTotal);
      }
    },
  );
  metrics.counter(
    "trackmirror_host_primary_errors_total",
    "Writes, zeroings and flushes the primary image refused (ENOSPC, EIO)",
    ["volume"],
    (set) => {
      for (const v of agent.volumes) set({ volume: v.name }, v.primary.errors);
    },
  );

  return app
    .route("/v1/status", statusApp(agent))
    .route("/v1/volumes/:name/data", dataApp(agent))
    .route("/v1/volumes/:name/resync", resyncApp(agent))
    .route("/v1/volumes/:name/verify", verifyApp(agent))
    .route("/v1/volumes/:name/cycle", cycleApp(agent))
    .route("/", hostEventRoutes());
}

export type HostApp = ReturnType<typeof createHostApp>;
