/**
 * The host agent's HTTP front-end: applications write and read volumes, operators read status and
 * start resync. One sub-app per resource, joined with `app.route`. Ranges are validated here, once,
 * before any layer of the write path sees them.
 */
import { bodyLimit } from "hono/body-limit";
import { z } from "zod";
import {
  apiRoute,
  binaryBody,
  binaryResponse,
  errorResponses,
  jsonResponse,
  newApiApp,
  noContent,
  optionalJsonBody,
} from "../src/api_route.ts";
import { checkRange } from "../src/extent.ts";
import { badRequest, notFound, tooLarge } from "../src/errors.ts";
import {
  type CycleProgress,
  cycleProgress,
  hostStatus,
  resyncProgress,
  type VerifyProgress,
  verifyProgress,
} from "../src/host_schemas.ts";
import { Metrics } from "../src/metrics.ts";
import { volumeParams } from "../src/schemas.ts";
import { applyServiceBasics } from "../src/service.ts";
import { describeIssues } from "../src/validate.ts";
import { resyncRequest, type ResyncRequestBody } from "../src/host_schemas.ts";
import type { HostAgent, HostVolume } from "./agent/host_agent.ts";
import { registerHostMetrics } from "./host_metrics.ts";
import type { UnackedWrites } from "./port_timing.ts";
import { hostEventRoutes } from "./event_routes.ts";
import { dataWriteFast } from "./data_write_fast.ts";

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

/** Where a volume's sub-apps are mounted (OpenAPI syntax; the app mounts its Hono form). */
const volumeBase = "/v1/volumes/{name}";

const byteOffset = z.string().regex(/^\d{1,16}$/, "Must be a whole number of bytes").transform(
  Number,
).refine(Number.isSafeInteger, "Must be at most 2^53-1");

const writeQuery = z.object({ offset: byteOffset });
const readQuery = z.object({ offset: byteOffset, length: byteOffset });

export interface HostAppOptions {
  token?: string;
  /** Where `/metrics` reads from (main.ts shares it with the timed ports); default a new one. */
  metrics?: Metrics;
  /** The timed link's unacknowledged writes (port_timing.ts), for the host's view of lag. */
  unacked?: UnackedWrites;
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
  const app = newApiApp();
  apiRoute(app, {
    method: "get",
    path: hostPaths.status,
    summary: "The agent's mode, component status table and every volume's state",
    tags: ["status"],
    responses: { 200: jsonResponse(hostStatus, "The host's status document") },
  }, (c) => c.json(agent.status(), 200));
  return app;
}

const volumeErrors = { 400: "A bad volume name", 404: "The volume is not served by this host" };

/** `PUT|GET /v1/volumes/:name/data`: application writes and reads. */
function dataApp(agent: HostAgent) {
  const app = newApiApp();
  apiRoute(app, {
    method: "put",
    path: `${volumeBase}/data`,
    summary: "Write bytes at an offset (forked: backup, else a tracker mark, then the primary)",
    tags: ["data"],
    middleware: bodyLimit({
      maxSize: httpIoBytesMax,
      onError: () => {
        throw tooLarge(`Write body exceeds ${httpIoBytesMax} bytes`);
      },
    }),
    request: {
      params: volumeParams,
      query: writeQuery,
      body: binaryBody(`The bytes to write, at most ${httpIoBytesMax}`),
    },
    responses: {
      204: noContent("Written: the backup or the tracker acknowledged, then the primary"),
      ...errorResponses({
        400: "A bad offset, or a range outside the volume",
        404: volumeErrors[404],
        413: "Body over the bound",
        500: "The primary refused the write (EIO)",
        503: "Neither the backup nor the tracker acknowledged: nothing was written",
        507: "The primary is full (ENOSPC)",
      }),
    },
  }, async (c) => {
    const v = volumeOf(agent, c.req.valid("param").name);
    const { offset } = c.req.valid("query");
    const data = new Uint8Array(await c.req.arrayBuffer());
    checkedRange(v, offset, data.length);
    await v.device.write(offset, data);
    return c.body(null, 204);
  });
  apiRoute(app, {
    method: "get",
    path: `${volumeBase}/data`,
    summary: "Read bytes of the primary",
    tags: ["data"],
    request: { params: volumeParams, query: readQuery },
    responses: {
      200: binaryResponse("The bytes"),
      ...errorResponses({
        400: "A bad offset or length, or a range outside the volume",
        404: volumeErrors[404],
        413: "Length over the bound",
      }),
    },
  }, async (c) => {
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
  return app;
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
  const app = newApiApp();
  apiRoute(app, {
    method: "post",
    path: `${volumeBase}/resync`,
    summary: "Start a resync of the volume (plain: the tracker's marks; or checksum)",
    tags: ["resync"],
    request: {
      params: volumeParams,
      body: optionalJsonBody(resyncRequest, "Optional; no body is a plain resync"),
    },
    responses: {
      202: jsonResponse(resyncProgress, "Started (or already running): its progress"),
      ...errorResponses({
        ...volumeErrors,
        409: "The volume cannot be resynced now (split brain, fenced, cycle mode, ...)",
        413: "Body over the bound",
      }),
    },
  }, async (c) => {
    const v = volumeOf(agent, c.req.valid("param").name);
    const body = await resyncBody(c.req.raw);
    return c.json(await agent.requestResync(v.name, body), 202);
  });
  apiRoute(app, {
    method: "get",
    path: `${volumeBase}/resync`,
    summary: "Progress of the volume's latest resync",
    tags: ["resync"],
    request: { params: volumeParams },
    responses: {
      200: jsonResponse(resyncProgress, "Its progress"),
      ...errorResponses(volumeErrors),
    },
  }, (c) => {
    const v = volumeOf(agent, c.req.valid("param").name);
    return c.json(agent.resyncProgress(v.name), 200);
  });
  return app;
}

/** Largest body read by a job route that takes none (verify, cycle): any non-empty one is refused. */
const jobBodyBytesMax = 4096;

/** What a job route answers: a verify's or a cycle's progress. */
type JobProgress = VerifyProgress | CycleProgress;

/**
 * `POST|GET /v1/volumes/:name/{verify,cycle}`: a job of the volume that takes no body (a body is
 * refused, so options sent to an agent that does not know them are never silently ignored).
 * POST starts it (202 with its progress), GET reads its progress. `what` names it in errors.
 */
function jobApp(
  agent: HostAgent,
  job: {
    what: "Verify" | "Cycle";
    path: string;
    /** What starting it does, and when it is refused with 409. */
    summary: string;
    progress: z.ZodType<JobProgress>;
  },
  start: (name: string) => JobProgress,
  progress: (name: string) => JobProgress,
) {
  const { what } = job;
  const tags = [what.toLowerCase()];
  const app = newApiApp();
  apiRoute(app, {
    method: "post",
    path: job.path,
    summary: job.summary,
    tags,
    middleware: bodyLimit({
      maxSize: jobBodyBytesMax,
      onError: () => {
        throw tooLarge(`${what} request body exceeds ${jobBodyBytesMax} bytes`);
      },
    }),
    request: { params: volumeParams },
    responses: {
      202: jsonResponse(job.progress, "Started: its progress"),
      ...errorResponses({
        400: "A bad volume name, or a body (it takes none)",
        404: volumeErrors[404],
        409: `The volume cannot run a ${what.toLowerCase()} now`,
        413: "Body over the bound",
      }),
    },
  }, async (c) => {
    const v = volumeOf(agent, c.req.valid("param").name);
    const body = await c.req.text();
    if (body.trim() !== "") {
      throw badRequest(
        `${what} request of volume "${v.name}" takes no body; got ` +
          `${JSON.stringify(body.slice(0, 80))}`,
      );
    }
    return c.json(start(v.name), 202);
  });
  apiRoute(app, {
    method: "get",
    path: job.path,
    summary: `Progress of the volume's latest ${what.toLowerCase()}`,
    tags,
    request: { params: volumeParams },
    responses: {
      200: jsonResponse(job.progress, "Its progress"),
      ...errorResponses(volumeErrors),
    },
  }, (c) => {
    const v = volumeOf(agent, c.req.valid("param").name);
    return c.json(progress(v.name), 200);
  });
  return app;
}

/** Online verify: start one, read its progress and findings. */
function verifyApp(agent: HostAgent) {
  return jobApp(
    agent,
    {
      what: "Verify",
      path: `${volumeBase}/verify`,
      summary: "Start an online verify: compare every region's SHA-256 with the backup's and " +
        "mark differences at the tracker (409 while one runs)",
      progress: verifyProgress,
    },
    (n) => agent.startVerify(n),
    (n) => agent.verifyProgress(n),
  );
}

/**
 * Cycle mode (issue 10): run one cycle now (409 while one runs or for a journal-mode volume),
 * read the latest cycle's progress and the schedule.
 */
function cycleApp(agent: HostAgent) {
  return jobApp(
    agent,
    {
      what: "Cycle",
      path: `${volumeBase}/cycle`,
      summary: "Run one freeze-and-copy cycle of a cycle-mode volume now (409 while one runs, " +
        "or for a journal-mode volume)",
      progress: cycleProgress,
    },
    (n) => agent.startCycle(n),
    (n) => agent.cycleProgress(n),
  );
}

export function createHostApp(agent: HostAgent, opts: HostAppOptions = {}) {
  const metrics = opts.metrics ?? new Metrics();
  const app = newApiApp();
  applyServiceBasics(app, "host", {
    token: opts.token,
    metrics,
    description: "The host agent: owns primary volumes, forks every write (backup first, else a " +
      "tracker mark, then the primary), serves them over NBD and HTTP, runs resync.",
  });
  registerHostMetrics(metrics, agent, opts.unacked);

  const routed = app
    .route("/", statusApp(agent))
    .route("/", dataApp(agent))
    .route("/", resyncApp(agent))
    .route("/", verifyApp(agent))
    .route("/", cycleApp(agent))
    .route("/", hostEventRoutes());
  // The hot write takes a lean path ahead of the router; whatever it declines (every bad or
  // unusual request) goes through the routes above. `app.request` calls `fetch`, so in-process
  // tests see the same front door as the server.
  const fast = dataWriteFast(agent, { token: opts.token, service: "host" });
  const routerFetch = routed.fetch;
  routed.fetch = (req, env, ctx) => fast(req) ?? routerFetch(req, env, ctx);
  return routed;
}

export type HostApp = ReturnType<typeof createHostApp>;
