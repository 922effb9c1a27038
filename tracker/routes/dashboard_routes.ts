/**
 * The web dashboard (issue 11 item 5): `GET /` and its script and style, plain files in
 * tracker/dashboard/ read as they are (no build step). The page reads `/v1/overview/stream`,
 * `/v1/volumes/{name}/map` and, where the tracker has it, `/v1/events`.
 *
 * The files hold no data, so app.ts mounts these routes before the token check: a tracker with a
 * token still serves the page, which then asks for the token (tracker/dashboard/streams.js) and
 * sends it with every data request.
 */
import { Hono } from "hono";

/** The dashboard's files: path served → file in tracker/dashboard/ and its content type. */
export const dashboardFiles = {
  "/": { file: "index.html", type: "text/html; charset=utf-8" },
  "/dashboard/app.js": { file: "app.js", type: "text/javascript; charset=utf-8" },
  "/dashboard/streams.js": { file: "streams.js", type: "text/javascript; charset=utf-8" },
  "/dashboard/style.css": { file: "style.css", type: "text/css; charset=utf-8" },
} as const;

const dashboardDir = new URL("../dashboard/", import.meta.url);

export function dashboardRoutes() {
  const app = new Hono();
  for (const [path, { file, type }] of Object.entries(dashboardFiles)) {
    app.get(path, async (c) => {
      const body = await Deno.readFile(new URL(file, dashboardDir));
      return c.body(body, 200, { "content-type": type, "cache-control": "no-cache" });
    });
  }
  return app;
}
