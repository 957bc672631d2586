import { DlqListRequest, DlqPurgeRequest, DlqReplayRequest, parseWith } from "@flowmonkey/shared";
import { Hono } from "hono";
import { z } from "zod";
import { limitBody, readBody } from "../body.js";
import type { RouteDeps } from "../deps.js";
import { allowOperator } from "../auth/access.js";

const { includeReplayed, limit } = DlqListRequest.shape;

/**
 * Query of GET /v1/dlq: the shared DlqListRequest with its two non-string fields read from
 * strings first, so bounds and defaults stay in the shared schema. Strict like the request,
 * so a misspelt filter is an error rather than ignored.
 */
export const DlqListQuery = DlqListRequest.extend({
  // `true/false`, `1/0`, `yes/no`...: z.coerce.boolean would read "false" as true.
  includeReplayed: z.stringbool().optional().pipe(includeReplayed),
  limit: z.coerce.number().optional().pipe(limit),
});

/** Listing and replaying dead-lettered tasks: thin calls into fm.api.dlq.*. */
export function dlqRoutes(deps: RouteDeps): Hono {
  const { api, maxMessageBytes } = deps;
  const app = new Hono();

  app.get("/v1/dlq", async (c) => {
    allowOperator(c, "read");
    const query = parseWith(DlqListQuery, c.req.query(), "query");
    return c.json(await api.listDeadTasks(query));
  });

  // 200 even when some ids were refused: each refusal is in the reply with its code.
  app.post("/v1/dlq/replay", limitBody(maxMessageBytes), async (c) => {
    allowOperator(c, "admin");
    const { ids } = await readBody(c, DlqReplayRequest, { maxBytes: maxMessageBytes, what: "replay request" });
    return c.json(await api.replayDeadTasks(ids));
  });

  // A body rather than a query: a purge is destructive, so a bare POST (empty body) purging
  // everything is allowed but spelled out by the caller, never a stray link.
  app.post("/v1/dlq/purge", limitBody(maxMessageBytes), async (c) => {
    allowOperator(c, "admin");
    const request = await readBody(c, DlqPurgeRequest, { maxBytes: maxMessageBytes, what: "purge request", empty: {} });
    return c.json(await api.purgeDeadTasks(request));
  });

  return app;
}
