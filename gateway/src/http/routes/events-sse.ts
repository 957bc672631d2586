import { createNames, decode, deferred, ExecutionEvent, Progress, toError, type Subjects } from "@flowmonkey/shared";
import { createProgressState } from "../progress-state.js";
import type { Msg } from "@nats-io/nats-core";
import { Hono, type Context } from "hono";
import { streamSSE, type SSEMessage } from "hono/streaming";
import { tokenParam, type RouteDeps } from "../deps.js";
import { toProblem } from "../problem.js";
import { allow, allowOperator, assertVisible } from "../auth/access.js";

/** Comment lines keep idle connections open through proxies that cut silent streams. */
const KEEP_ALIVE_MS = 15_000;
/** Executions a flow stream remembers as its own (to pass their progress). */
const MAX_TRACKED_EXECUTIONS = 10_000;
/** Writes queued for a client that does not read; beyond this it is dropped rather than buffered forever. */
const MAX_PENDING_WRITES = 1_000;

type Topic = { subject: string; kind: "exec" | "progress" };

/** What a stream sends right after `ready`: the state as it is now, so a client that (re)connects misses nothing. */
type CatchUp = () => Promise<Array<{ event: string; data: unknown }>>;

export interface EventRoutes {
  app: Hono;
  /** Ends every open stream (gateway drain/close), so the HTTP server can finish closing. */
  closeAll(): void;
  /** Streams currently open; each holds core NATS subscriptions. */
  openStreams(): number;
}

/**
 * Server-Sent Events relaying the engine's `exec` events and the workers' `progress`, per
 * execution, per flow, or for everything (the dashboard). Each stream owns its own core
 * subscriptions and drops them when the client goes away. Events: `ready` (subscriptions are
 * live), `snapshot` (the execution, or the flow's recent executions, as they are now),
 * `exec`, `progress`. Every event has an id; the live events are core NATS messages, so a
 * client that reconnects (EventSource sends Last-Event-ID) is brought up to date from state
 * instead of a replay: the snapshot, then each step's latest progress from KV `fm_progress`,
 * all sent after the new subscriptions are live — nothing that happened meanwhile is lost.
 */
export function eventRoutes(deps: RouteDeps, subjects: Subjects): EventRoutes {
  const { nc, api, log } = deps;
  const live = new Set<() => void>();

  // Anyone may publish on these subjects; only well-formed events reach browsers, and progress
  // only for the execution and step its subject names (a region's workers may publish only their
  // region's subjects, so the subject is what permissions vouch for, not the body).
  const parse = (kind: Topic["kind"], msg: Msg): unknown => {
    try {
      if (kind === "exec") return decode(msg.data, ExecutionEvent);
      const progress = decode(msg.data, Progress);
      const named = subjects.parseProgress(msg.subject);
      if (!named || named.executionId !== progress.executionId || named.stepId !== progress.stepId) throw new Error("the progress names another step than its subject");
      return progress;
    } catch (thrown) {
      log.debug({ subject: msg.subject, err: toError(thrown) }, "dropped a malformed event");
      return undefined;
    }
  };

  const progressState = createProgressState(nc, createNames(subjects.prefix).buckets.progress, log);
  let streamSeq = 0;

  const relay = (c: Context, topics: Topic[], catchUp?: CatchUp, accept?: (kind: Topic["kind"], event: unknown) => boolean): Response =>
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
        // Ids unique per stream and increasing: `<stream>-<n>`; they are for EventSource's Last-Event-ID.
        const streamId = `${Date.now().toString(36)}${(streamSeq++).toString(36)}`;
        let n = 0;
        const send = (message: SSEMessage) => {
          if (finished) return;
          if (pending >= MAX_PENDING_WRITES) {
            log.warn({ path: c.req.path }, "SSE client is not reading; closing its stream");
            finish();
            return;
          }
          pending++;
          void stream.writeSSE({ ...message, id: `${streamId}-${n++}` }).finally(() => pending--);
        };

        const subs = topics.map((topic) =>
          nc.subscribe(topic.subject, {
            callback: (err, msg) => {
              if (err) return finish();
              const event = parse(topic.kind, msg);
              if (event !== undefined && (!accept || accept(topic.kind, event))) send({ event: topic.kind, data: JSON.stringify(event) });
            },
          }),
        );
        const keepAlive = setInterval(() => void stream.write(": keep-alive\n\n"), KEEP_ALIVE_MS);
        try {
          // After flush the server has our subscriptions: nothing published from now on is missed.
          await nc.flush();
          send({ event: "ready", data: JSON.stringify({ subjects: topics.map((t) => t.subject) }) });
          if (catchUp) {
            try {
              for (const { event, data } of await catchUp()) send({ event, data: JSON.stringify(data) });
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
        ...subjects.progressOfExecution(id).map((subject) => ({ subject, kind: "progress" as const })),
      ],
      async () => [{ event: "snapshot", data: await api.get(id) }, ...(await progressState.latestOf(id)).map((p) => ({ event: "progress", data: p }))],
    );
  });
  // One flow's executions: its exec events, and the progress of the executions seen in them or in
  // the snapshot (progress subjects name executions, not flows). Executions of every tenant: operators only.
  app.get("/v1/flows/:flowId/events", (c) => {
    allowOperator(c, "read");
    const flowId = tokenParam("flowId", c.req.param("flowId"));
    const mine = new Set<string>();
    return relay(
      c,
      [
        { subject: subjects.execOfFlow(flowId), kind: "exec" },
        { subject: subjects.progressAll, kind: "progress" },
      ],
      async () => {
        const { executions } = await api.list({ flowId, limit: 50 });
        for (const e of executions) mine.add(e.id);
        const running = executions.filter((e) => e.status === "running" || e.status === "waiting");
        const progress = (await Promise.all(running.map((e) => progressState.latestOf(e.id)))).flat();
        return [{ event: "snapshot", data: { flowId, executions } }, ...progress.map((p) => ({ event: "progress", data: p }))];
      },
      (kind, event) => {
        const { executionId } = event as { executionId: string };
        if (kind === "exec" && !mine.has(executionId)) {
          mine.add(executionId);
          // Bounded: a stream open for days forgets its oldest executions (their progress stops passing).
          if (mine.size > MAX_TRACKED_EXECUTIONS) mine.delete(mine.values().next().value!);
        }
        return kind === "exec" || mine.has(executionId);
      },
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
