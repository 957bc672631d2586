import { Event, EventName, listWorkers, parseWith, publishEvent, QueuePauseRequest, QueueResumeRequest, QueuesRequest, type Names } from "@flowmonkey/shared";
import { Hono } from "hono";
import { z } from "zod";
import { limitBody, readBody } from "../body.js";
import type { RouteDeps } from "../deps.js";
import { allowOperator } from "../auth/access.js";

/** Query of GET /v1/workers. */
export const WorkersQuery = z.object({ region: z.string().max(64).optional(), handler: z.string().max(128).optional() }).strict();
/** POST /v1/events/:name body: the event's data plus, optionally, where it came from. `data` absent = null. */
export const EmitBody = Event.omit({ at: true }).strict();
export const PauseBody = QueuePauseRequest.pick({ reason: true }).strict();
const IdempotencyKey = z.string().min(1).max(256).optional();

/** What operators look at and poke: workers (KV), queues (fm.api.queues), custom events (JetStream). */
export function operatorRoutes(deps: RouteDeps, names: Names): Hono {
  const { api, nc, log, maxMessageBytes } = deps;
  const app = new Hono();

  app.get("/v1/workers", async (c) => {
    allowOperator(c, "read");
    const query = parseWith(WorkersQuery, c.req.query(), "query");
    const { workers } = await listWorkers(nc, names, log);
    return c.json({
      workers: workers.filter((w) => (!query.region || w.region === query.region) && (!query.handler || w.handlers.includes(query.handler))),
    });
  });

  app.get("/v1/queues", async (c) => {
    allowOperator(c, "read");
    return c.json(await api.queues(parseWith(QueuesRequest, c.req.query(), "query")));
  });

  // Pausing parks the lane's new tasks in the engine; see fm.api.queues.pause.
  app.post("/v1/queues/:region/:handler/pause", limitBody(maxMessageBytes), async (c) => {
    allowOperator(c, "admin");
    const { reason } = await readBody(c, PauseBody, { maxBytes: maxMessageBytes, what: "pause request", empty: {} });
    const lane = parseWith(QueueResumeRequest, { region: c.req.param("region"), handler: c.req.param("handler") }, "path");
    return c.json(await api.pauseQueue({ ...lane, ...(reason ? { reason } : {}) }));
  });

  app.post("/v1/queues/:region/:handler/resume", async (c) => {
    allowOperator(c, "admin");
    const lane = parseWith(QueueResumeRequest, { region: c.req.param("region"), handler: c.req.param("handler") }, "path");
    return c.json(await api.resumeQueue(lane));
  });

  app.post("/v1/events/:name", limitBody(maxMessageBytes), async (c) => {
    // An event can resume any tenant's waiting steps (resumeOn): operators only.
    allowOperator(c, "write");
    const name = parseWith(EventName, c.req.param("name"), "path parameter name");
    const body = await readBody(c, EmitBody, { maxBytes: maxMessageBytes, what: "event", empty: {} });
    // An Idempotency-Key makes a retried POST one event (JetStream de-duplication window).
    const msgId = parseWith(IdempotencyKey, c.req.header("idempotency-key"), "header Idempotency-Key");
    const ack = await publishEvent(nc, names.subjects, name, { ...body, at: new Date().toISOString() }, msgId ? { msgId } : {});
    return c.json({ name, ...ack }, 202);
  });

  return app;
}
