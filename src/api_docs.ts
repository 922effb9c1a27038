/**
 * `GET /openapi.json` and `GET /docs` of every service (issue 11): the OpenAPI 3.1 document built
 * from the routes' own zod schemas at request time (so sub-apps mounted later are in it), and a
 * Swagger UI page over it. The page's script and style are the pinned `swagger-ui-dist` package's
 * own files, read from where Deno keeps the npm package and served under `/docs/`: nothing is
 * loaded from a CDN, so the page works on an air-gapped machine.
 */
import type { OpenAPIHono } from "@hono/zod-openapi";
import { join } from "node:path";
import swaggerUiDir from "swagger-ui-dist/absolute-path.js";
import { z } from "zod";
import { apiRoute, htmlResponse, jsonResponse, textResponse } from "./api_route.ts";
import { version } from "./version.ts";

/** Where the document and the page are served. */
export const apiDocsPaths = { openapi: "/openapi.json", docs: "/docs" } as const;

/** The swagger-ui-dist files the page loads, and their media types. */
const assetTypes = {
  "swagger-ui.css": "text/css; charset=utf-8",
  "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
} as const;
type Asset = keyof typeof assetTypes;
const assetNames = Object.keys(assetTypes) as [Asset, ...Asset[]];

/** Assets read once, on first request (the bundle is ~1.5 MB; a service never needing it never reads it). */
const assetCache = new Map<Asset, Promise<Uint8Array>>();

function readAsset(asset: Asset): Promise<Uint8Array> {
  let bytes = assetCache.get(asset);
  if (!bytes) {
    bytes = Deno.readFile(join(swaggerUiDir(), asset));
    bytes.catch(() => assetCache.delete(asset));
    assetCache.set(asset, bytes);
  }
  return bytes;
}

/** The page: Swagger UI over this service's document. Scripts are files, not inline. */
function docsPage(title: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${title} API</title>
<link rel="stylesheet" href="${apiDocsPaths.docs}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="${apiDocsPaths.docs}/swagger-ui-bundle.js"></script>
<script src="${apiDocsPaths.docs}/init.js"></script>
</body>
</html>
`;
}

const initScript = `window.ui = SwaggerUIBundle({
  url: "${apiDocsPaths.openapi}",
  dom_id: "#swagger-ui",
  deepLinking: true,
});
`;

/** What the document says about the service. */
export interface ApiDocsOptions {
  /** The service's name, e.g. "tracker". */
  service: string;
  /** One paragraph on what the service is, for the document's `info.description`. */
  description: string;
  /** True when the service wants a bearer token: the document says so (Swagger UI's Authorize). */
  bearer: boolean;
}

/**
 * Registers `GET /openapi.json`, `GET /docs` and the page's assets on `app` (the service's root
 * app: its document holds every route registered on it or mounted into it with `app.route`).
 */
export function serveApiDocs(app: OpenAPIHono, opts: ApiDocsOptions): void {
  if (opts.bearer) {
    app.openAPIRegistry.registerComponent("securitySchemes", "bearer", {
      type: "http",
      scheme: "bearer",
      description: "The service's --token (every route but /healthz needs it)",
    });
  }
  const document = () =>
    app.getOpenAPI31Document({
      openapi: "3.1.0",
      info: { title: `trackmirror ${opts.service}`, version, description: opts.description },
      ...(opts.bearer ? { security: [{ bearer: [] }] } : {}),
    });
  apiRoute(app, {
    method: "get",
    path: apiDocsPaths.openapi,
    summary: "This document: the service's OpenAPI 3.1 description",
    tags: ["docs"],
    responses: {
      200: jsonResponse(
        z.record(z.string(), z.unknown()).openapi({ description: "An OpenAPI 3.1 document" }),
        "The document",
      ),
    },
  }, (c) => c.json(document(), 200));
  apiRoute(app, {
    method: "get",
    path: apiDocsPaths.docs,
    summary: "The API reference page (Swagger UI, served from this service)",
    tags: ["docs"],
    responses: { 200: htmlResponse("The page") },
  }, (c) => c.html(docsPage(`trackmirror ${opts.service}`)));
  apiRoute(app, {
    method: "get",
    path: `${apiDocsPaths.docs}/init.js`,
    summary: "The page's start script (points Swagger UI at /openapi.json)",
    tags: ["docs"],
    responses: { 200: textResponse("The script", "text/javascript") },
  }, (c) => c.body(initScript, 200, { "content-type": "text/javascript; charset=utf-8" }));
  apiRoute(app, {
    method: "get",
    path: `${apiDocsPaths.docs}/{asset}`,
    summary: "Swagger UI's own files, from the pinned swagger-ui-dist package",
    tags: ["docs"],
    request: { params: z.object({ asset: z.enum(assetNames) }) },
    responses: {
      200: {
        description: "The file",
        content: {
          "text/css": { schema: z.string() },
          "text/javascript": { schema: z.string() },
        },
      },
    },
  }, async (c) => {
    const asset = c.req.valid("param").asset;
    const bytes = await readAsset(asset);
    return c.body(bytes as Uint8Array<ArrayBuffer>, 200, {
      "content-type": assetTypes[asset],
      "cache-control": "max-age=3600",
    });
  });
}
