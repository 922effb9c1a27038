/**
 * The whole system as the tracker sees it (issue 11 item 5, for the dashboard): `GET /v1/overview`
 * is the document of `deno task status --json` (src/status/status_document.ts), and
 * `GET /v1/overview/stream` sends it as server-sent events (`event: overview`) once a second.
 *
 * The tracker answers its own part from its state and asks the rest the way the status command
 * does (src/status/status_gather.ts): each volume's owner, then the backup the owner names, with
 * the shared token. Streams are bounded (`overviewStreamsMax`), each asks the services once per
 * `overviewIntervalMs`; a stream ends when its client goes or `closing` is aborted (the tracker
 * stopping: Deno's graceful shutdown waits for open responses).
 */
import { streamSSE } from "hono/streaming";
import { z } from "zod";
import {
  apiRoute,
  errorResponses,
  eventStreamResponse,
  jsonResponse,
  newApiApp,
} from "../../src/api_route.ts";
import { ServiceError } from "../../src/errors.ts";
import { assembleStatus } from "../../src/status/status_assemble.ts";
import type { SystemStatus } from "../../src/status/status_document.ts";
import { gatherFrom, type TrackerReply } from "../../src/status/status_gather.ts";
import { storeProblem } from "../../src/status/store_problem.ts";
import type { RouteDeps } from "./route_deps.ts";
import { trackerStatusOf } from "./status_routes.ts";

/** Time between two documents of one stream. */
export const overviewIntervalMs = 1000;
/** Most overview streams open at once; one more is refused with 503. */
export const overviewStreamsMax = 16;

/**
 * The status document's outline for the API reference; its fields are described in
 * src/status/status_document.ts (`SystemStatus`) and README ("Is my mirror in sync?").
 */
const systemStatusOutline = z.object({
  format: z.number(),
  at: z.number(),
  atIso: z.string(),
  health: z.enum(["healthy", "degraded", "down"]),
  exitCode: z.number(),
  problems: z.array(z.string()),
  tracker: z.looseObject({}),
  hosts: z.array(z.looseObject({})),
  backups: z.array(z.looseObject({})),
  volumes: z.array(z.looseObject({})),
}).openapi("SystemStatus", {
  description: "The document of `deno task status --json` (src/status/status_document.ts)",
});

export interface OverviewOptions {
  /** The shared token, sent to the host agents and backups the overview asks. */
  token?: string;
  /** Aborted when the tracker stops: open streams end. */
  closing?: AbortSignal;
}

export function overviewRoutes(deps: RouteDeps, opts: OverviewOptions = {}) {
  const { store, clock, storeProbe } = deps;
  const startedAt = clock.now();
  let streams = 0;

  async function overview(trackerUrl: string): Promise<SystemStatus> {
    const at = clock.now();
    let tracker: TrackerReply;
    const health = storeProbe?.last ?? null;
    if (health?.ok === false) {
      // The store does not answer (the background probe says so): not asked, not waited on.
      const status = trackerStatusOf([], startedAt, clock.now(), {
        volumesAt: null,
        store: health,
      });
      tracker = { error: storeProblem(health), status };
    } else {
      try {
        const volumes = await store.list();
        tracker = {
          volumes,
          status: trackerStatusOf(volumes, startedAt, clock.now(), { store: health }),
        };
      } catch (err) {
        tracker = { error: (err as Error).message };
      }
    }
    return assembleStatus(await gatherFrom(tracker, { trackerUrl, token: opts.token }, at));
  }

  const app = newApiApp();
  apiRoute(app, {
    method: "get",
    path: "/v1/overview",
    summary: "The whole system as `deno task status --json` shows it, asked by the tracker",
    tags: ["dashboard"],
    responses: { 200: jsonResponse(systemStatusOutline, "The status document") },
  }, async (c) => c.json(await overview(new URL(c.req.url).origin), 200));
  apiRoute(app, {
    method: "get",
    path: "/v1/overview/stream",
    summary:
      `The overview as server-sent events (event: overview), one every ${overviewIntervalMs} ms`,
    tags: ["dashboard"],
    responses: {
      200: eventStreamResponse("The stream of status documents", systemStatusOutline),
      ...errorResponses({ 503: `${overviewStreamsMax} overview streams are open already` }),
    },
  }, (c) => {
    if (streams >= overviewStreamsMax) {
      throw new ServiceError(503, `${overviewStreamsMax} overview streams are open already`);
    }
    const origin = new URL(c.req.url).origin;
    streams++;
    return streamSSE(c, async (stream) => {
      const ended = () => stream.aborted || stream.closed || opts.closing?.aborted === true;
      let timer: ReturnType<typeof setTimeout> | undefined;
      let wakeSleep = () => {};
      const wake = () => stream.abort();
      stream.onAbort(() => {
        clearTimeout(timer);
        wakeSleep();
      });
      opts.closing?.addEventListener("abort", wake);
      try {
        for (let id = 1; !ended(); id++) {
          const doc = await overview(origin);
          if (ended()) break;
          await stream.writeSSE({ event: "overview", id: String(id), data: JSON.stringify(doc) });
          await new Promise<void>((resolve) => {
            wakeSleep = resolve;
            timer = setTimeout(resolve, overviewIntervalMs);
          });
        }
      } finally {
        opts.closing?.removeEventListener("abort", wake);
        streams--;
      }
    });
  });
  return app;
}
