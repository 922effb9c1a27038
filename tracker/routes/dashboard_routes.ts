/**
 * The web dashboard (issue 11 item 5): `GET /` and its script and style, plain files in
 * tracker/dashboard/ read as they are (no build step). The page reads `/v1/overview/stream`,
 * `/v1/volumes/{name}/map` and, where the tracker has it, `/v1/events`.
 *
 * The files hold no data, so app.ts mounts these routes before the token check: a tracker with a
 * token still serves the page, which then asks for the token (tracker/dashboard/streams.js) and
 * sends it with every data request.
 */
import { apiRoute, htmlResponse, newApiApp, textResponse } from "../../src/api_route.ts";

/** The dashboard's files: path served → file in tracker/dashboard/, its content type and title. */
export const dashboardFiles = {
  "/": { file: "index.html", type: "text/html; charset=utf-8", what: "The dashboard page" },
  "/dashboard/app.js": {
    file: "app.js",
    type: "text/javascript; charset=utf-8",
    what: "The dashboard's script (panels, map)",
  },
  "/dashboard/streams.js": {
    file: "streams.js",
    type: "text/javascript; charset=utf-8",
    what: "The dashboard's script (token, streams read with fetch)",
  },
  "/dashboard/style.css": {
    file: "style.css",
    type: "text/css; charset=utf-8",
    what: "The dashboard's style",
  },
} as const;

const dashboardDir = new URL("../dashboard/", import.meta.url);

/** The files as routes of the API reference (tag "dashboard"), served without the token. */
export function dashboardRoutes() {
  const app = newApiApp();
  for (const [path, { file, type, what }] of Object.entries(dashboardFiles)) {
    const mediaType = type.split(";")[0];
    apiRoute(app, {
      method: "get",
      path,
      summary: what,
      tags: ["dashboard"],
      security: [],
      responses: {
        200: mediaType === "text/html" ? htmlResponse(what) : textResponse(what, mediaType),
      },
    }, async (c) => {
      const body = await Deno.readFile(new URL(file, dashboardDir));
      return c.body(body, 200, { "content-type": type, "cache-control": "no-cache" });
    });
  }
  return app;
}
