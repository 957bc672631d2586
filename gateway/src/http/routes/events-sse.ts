import { decode, deferred, ExecutionEvent, Progress, toError, type Subjects } from "@flowmonkey/shared";
import type { Msg } from "@nats-io/nats-core";
import { Hono, type Context } from "hono";
import { streamSSE, type SSEMessage } from "hono/streaming";
import { tokenParam, type RouteDeps } from "../deps.js";
import { toProblem } from "../problem.js";
import { allow, allowOperator, assertVisible } from "../auth/access.js";

/** Comment lines keep idle connections open through proxies that cut silent streams. */
const KEEP_ALIVE_MS = 15_000;
/** Writes queued for a client that does not read; beyond this it is dropped rather than buffered forever. */
const MAX_PENDING_WRITES = 1_000;

type Topic = { subject: string; kind: "exec" | "progress" };

export interface EventRoutes {
  app: Hono;
  /** Ends every open stream (gateway drain/close), so the HTTP server can finish closing. */
  closeAll(): void;
  /** Streams currently open; each holds core NATS subscriptions. */
  openStreams(): number;
}

/**
 * Server-Sent Events relaying the engine's `exec` events and the workers' `progress`, per
 * execution or for everything (the dashboard). Each stream owns its own core subscriptions and
 * drops them when the client goes away. Events: `ready` (subscriptions are live), `snapshot`
 * (per-execution streams: the execution as it is now), `exec`, `progress`.
 */
export function eventRoutes(deps: RouteDeps, subjects: Subjects): EventRoutes {
  const { nc, api, log } = deps;
  const live = new Set<() => void>();

  // Anyone may publish on these subjects; only well-formed events reach browsers.
  const parse = (kind: Topic["kind"], msg: Msg): unknown => {
    try {
      return kind === "exec" ? decode(msg.data, ExecutionEvent) : decode(msg.data, Progress);
    } catch (thrown) {
      log.debug({ subject: msg.subject, err: toError(thrown) }, "dropped a malformed event");
      return undefined;
    }
  };

  const relay = (c: Context, topics: Topic[], snapshot?: () => Promise<unknown>): Response =>
    streamSSE(
      c,
      async (stream) => {
        const done = deferred<void>();
        let finished = false;
        const finish = () => {
          if (finished) return;
          finished = true;
          done.resolve();
        };
        live.add(finish);
        stream.onAbort(finish);
        c.req.raw.signal.addEventListener("abort", finish, { once: true });

        let pending = 0;
        const send = (message: SSEMessage) => {
          if (finished) return;
          if (pending >= MAX_PENDING_WRITES) {
            log.warn({ path: c.req.path }, "SSE client is not reading; closing its stream");
            finish();
            return;
          }
          pending++;
          void stream.writeSSE(message).finally(() => pending--);
        };

        const subs = topics.map((topic) =>
          nc.subscribe(topic.subject, {
            callback: (err, msg) => {
              if (err) return finish();
              const event = parse(topic.kind, msg);
              if (event !== undefined) send({ event: topic.kind, data: JSON.stringify(event) });
            },
          }),
        );
        const keepAlive = setInterval(() => void stream.write(": keep-alive\n\n"), KEEP_ALIVE_MS);
        try {
          // After flush the server has our subscriptions: nothing published from now on is missed.
          await nc.flush();
          send({ event: "ready", data: JSON.stringify({ subjects: topics.map((t) => t.subject) }) });
          if (snapshot) {
            try {
              send({ event: "snapshot", data: JSON.stringify(await snapshot()) });
            } catch (thrown) {
              send({ event: "problem", data: JSON.stringify(toProblem(thrown)) });
            }
          }
          await done.promise;
        } finally {
          clearInterval(keepAlive);
          for (const sub of subs) sub.unsubscribe();
          live.delete(finish);
        }
      },
      async (err) => {
        log.warn({ err, path: c.req.path }, "SSE stream failed");
      },
    );

  const app = new Hono();
  app.get("/v1/executions/:id/events", async (c) => {
    const tenant = allow(c, "read");
    const id = tokenParam("id", c.req.param("id"));
    if (tenant !== undefined) assertVisible(tenant, await api.get(id));
    return relay(
      c,
      [
        { subject: subjects.execOfExecution(id), kind: "exec" },
        { subject: subjects.progressOfExecution(id), kind: "progress" },
      ],
      () => api.get(id),
    );
  });
  // Every execution's events, whatever its tenant: operators only.
  app.get("/v1/events", (c) => {
    allowOperator(c, "read");
    return relay(c, [
      { subject: subjects.execAll, kind: "exec" },
      { subject: subjects.progressAll, kind: "progress" },
    ]);
  });

  return {
    app,
    closeAll: () => {
      for (const finish of [...live]) finish();
    },
    openStreams: () => live.size,
  };
}
