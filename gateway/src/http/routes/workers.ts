import { Kvm } from "@nats-io/kv";
import { createNames, listWorkerEntries, parseWith, Region } from "@flowmonkey/shared";
import { Hono } from "hono";
import { z } from "zod";
import type { RouteDeps } from "../deps.js";

const WorkersQuery = z.object({ region: Region.optional() }).strict();

/** GET /v1/workers[?region=]: the live worker registry (KV fm_workers), read-only. */
export function workersRoutes(deps: RouteDeps & { prefix: string }): Hono {
  const app = new Hono();
  const bucket = createNames(deps.prefix).buckets.workers;
  app.get("/v1/workers", async (c) => {
    const { region } = parseWith(WorkersQuery, c.req.query(), "query");
    const workers = await listWorkerEntries(await new Kvm(deps.nc).open(bucket));
    return c.json({ workers: region ? workers.filter((w) => w.region === region) : workers });
  });
  return app;
}
