import { readFile } from "node:fs/promises";
import { FmError } from "@flowmonkey/shared";
import { Hono } from "hono";
import { errorResponse } from "../problem.js";

/** Built by scripts/copy-assets.mjs: gateway/src/dashboard → gateway/dist/dashboard (beside dist/http). */
const DASHBOARD_DIR = new URL("../../dashboard/", import.meta.url);

/** The only files served; a fixed list means no path from the URL ever reaches the filesystem. */
const FILES: Record<string, { file: string; type: string }> = {
  "/": { file: "index.html", type: "text/html; charset=utf-8" },
  "/dashboard/app.js": { file: "app.js", type: "text/javascript; charset=utf-8" },
  "/dashboard/style.css": { file: "style.css", type: "text/css; charset=utf-8" },
};

/** The static dashboard: plain HTML + JS that talks to /v1/* like any other client. */
export function dashboardRoutes(): Hono {
  const app = new Hono();
  for (const [path, { file, type }] of Object.entries(FILES)) {
    app.get(path, async (c) => {
      let body: Buffer;
      try {
        body = await readFile(new URL(file, DASHBOARD_DIR));
      } catch (cause) {
        return errorResponse(new FmError("NOT_FOUND", `dashboard file ${file} is missing; run \`npm run build\``, { cause }));
      }
      return c.body(new Uint8Array(body), 200, { "content-type": type, "cache-control": "no-cache" });
    });
  }
  return app;
}
