import { parseWith, ScheduleListRequest, SchedulePutRequest, ScheduleRef } from "@flowmonkey/shared";
import { Hono } from "hono";
import { z } from "zod";
import { limitBody, readBody } from "../body.js";
import type { RouteDeps } from "../deps.js";
import { allowOperator } from "../auth/access.js";

/** The body of PUT /v1/schedules/:scheduleId: the schedule without its id (the path names it). */
export const SchedulePutBody = z.record(z.string(), z.unknown());

/**
 * Schedules over HTTP, a thin call into fm.api.schedules.*. Operators only: a schedule starts
 * executions of any tenant on its own.
 */
export function scheduleRoutes(deps: RouteDeps): Hono {
  const { api, maxMessageBytes } = deps;
  const app = new Hono();
  const idOf = (raw: string) => parseWith(ScheduleRef, { scheduleId: raw }, "path").scheduleId;

  app.put("/v1/schedules/:scheduleId", limitBody(maxMessageBytes), async (c) => {
    allowOperator(c, "write");
    const body = await readBody(c, SchedulePutBody, { maxBytes: maxMessageBytes, what: "schedule" });
    const request = parseWith(SchedulePutRequest, { ...body, scheduleId: c.req.param("scheduleId") }, "schedule");
    const reply = await api.putSchedule(request);
    return c.json(reply, reply.created ? 201 : 200);
  });
  app.get("/v1/schedules", async (c) => {
    allowOperator(c, "read");
    return c.json(await api.listSchedules(parseWith(ScheduleListRequest, c.req.query(), "query").flowId));
  });
  app.get("/v1/schedules/:scheduleId", async (c) => {
    allowOperator(c, "read");
    return c.json(await api.getSchedule(idOf(c.req.param("scheduleId"))));
  });
  app.delete("/v1/schedules/:scheduleId", async (c) => {
    allowOperator(c, "write");
    return c.json(await api.deleteSchedule(idOf(c.req.param("scheduleId"))));
  });
  app.post("/v1/schedules/:scheduleId/pause", async (c) => {
    allowOperator(c, "write");
    return c.json(await api.pauseSchedule(idOf(c.req.param("scheduleId"))));
  });
  app.post("/v1/schedules/:scheduleId/resume", async (c) => {
    allowOperator(c, "write");
    return c.json(await api.resumeSchedule(idOf(c.req.param("scheduleId"))));
  });
  return app;
}
