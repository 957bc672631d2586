/**
 * (a) The full mesh, main-process side: the real engine and worker run as child processes
 * (engine-proc.ts, worker-proc.ts); this process registers a three-`echo` flow, starts flows by
 * JetStream-publishing FlowStart messages with our own executionId, and learns of completion from
 * the engine's core `…exec.<flow>.<exec>.completed` events (`failed`/`cancelled` abort the run).
 */
import { jetstream } from "@nats-io/jetstream";
import type { NatsConnection, Subscription } from "@nats-io/nats-core";
import { createApiClient, createSubjects, encode } from "@flowmonkey/shared";
import pg from "pg";
import { spawnChild, type ChildHandle } from "./child-host.js";
import type { FlowSystem } from "./driver.js";
import { withDeadline } from "./stats.js";

export const MESH_FLOW_ID = "bench3";

export interface MeshOptions {
  prefix: string;
  concurrency: number;
  /** Chain step inputs with `{% %}` expressions (the engine evaluates JSONata per dispatch). */
  templates: boolean;
  /** Engine processes on the same prefix and database (they share the durable consumers). @default 1 */
  engines?: number;
}

export type DispatchSamples = { samples: number[]; expected: number } | { na: string };

/** The hops of a flow's life the engine's tables timestamp (ms each, one sample per flow or step). */
export const HOPS = ["startToFirstDispatch", "dispatchToHandlerStart", "handler", "resultToNextDispatch", "lastResultToCompleted"] as const;
export type HopSamples = Record<(typeof HOPS)[number], number[]> | { na: string };

export interface MeshSystem extends FlowSystem {
  /** The first engine process. */
  readonly engine: ChildHandle;
  readonly engines: readonly ChildHandle[];
  readonly worker: ChildHandle;
  readonly flow: Record<string, unknown>;
  /** Dispatch → handler start (ms) of these executions' tasks, from the engine's tasks table. */
  dispatchSamples(ids: string[]): Promise<DispatchSamples>;
  /** Where a flow's time goes, hop by hop, from the engine's tables (see hopsFromDb). */
  hopSamples(ids: string[]): Promise<HopSamples>;
  close(): Promise<void>;
}

export function benchFlow(templates: boolean): Record<string, unknown> {
  const input = (n: number) => (templates ? (n === 1 ? "{% input %}" : `{% steps.s${n - 1} %}`) : { step: n });
  return {
    id: MESH_FLOW_ID,
    version: "1.0.0",
    name: "three echo steps (benchmark)",
    steps: [1, 2, 3].map((n) => ({ id: `s${n}`, handler: "echo", input: input(n) })),
    output: "{% steps.s3 %}",
  };
}

export async function startMesh(nc: NatsConnection, natsUrl: string, databaseUrl: string, opts: MeshOptions): Promise<MeshSystem> {
  const childEnv = { NATS_URL: natsUrl, BENCH_PREFIX: opts.prefix, DATABASE_URL: databaseUrl, BENCH_CONCURRENCY: String(opts.concurrency) };
  const engines: ChildHandle[] = [];
  let worker: ChildHandle | undefined;
  const subs: Subscription[] = [];
  const stopAll = async () => {
    for (const s of subs) s.unsubscribe();
    await Promise.allSettled([worker?.stop(), ...engines.map((e) => e.stop())]);
  };
  try {
    // One after the other: each migrates the database under the advisory lock and ensures the streams.
    for (let i = 0; i < (opts.engines ?? 1); i++) engines.push(await spawnChild(i === 0 ? "engine" : `engine-${i + 1}`, "./engine-proc.ts", childEnv));
    worker = await spawnChild("worker", "./worker-proc.ts", childEnv);
    const api = createApiClient(nc, { prefix: opts.prefix, timeoutMs: 15_000 });
    const flow = benchFlow(opts.templates);
    await api.putFlow(flow);
    const subjects = createSubjects(opts.prefix);
    const js = jetstream(nc);
    const startSubject = subjects.flowStart(MESH_FLOW_ID);
    const execPrefix = subjects.execOfFlow(MESH_FLOW_ID).replace(/>$/, "");

    const system: MeshSystem = {
      engine: engines[0] as ChildHandle,
      engines,
      worker,
      flow,
      onDone: () => undefined,
      start: (id) => js.publish(startSubject, encode({ input: { bench: id }, executionId: id })),
      dispatchSamples: (ids) => dispatchFromDb(databaseUrl, ids),
      hopSamples: (ids) => hopsFromDb(databaseUrl, ids),
      close: stopAll,
    };
    for (const event of ["completed", "failed", "cancelled"] as const) {
      subs.push(
        nc.subscribe(`${execPrefix}*.${event}`, {
          callback: (err, msg) => {
            if (err) return;
            // <prefix>.exec.<flowId>.<executionId>.<event>: the id is the 4th token; no need to decode the body.
            const executionId = msg.subject.split(".")[3] as string;
            if (event === "completed") system.onDone(executionId, true);
            else system.onDone(executionId, false, `${event}: ${msg.string().slice(0, 500)}`);
          },
        }),
      );
    }
    await withDeadline(nc.flush(), 5_000, "flushing the completion subscriptions");
    return system;
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/**
 * tasks.dispatched_at is the engine's clock when it decided to dispatch (before its commit and
 * the outbox publish); tasks.started_at is the worker's metrics.startedAt (its clock when the
 * handler was called). Both are ISO timestamps with millisecond resolution, so each sample is
 * ±1 ms. Read after the phase, so the measurement adds no load while it runs.
 */
async function dispatchFromDb(databaseUrl: string, ids: string[]): Promise<DispatchSamples> {
  const client = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 5_000 });
  client.on("error", () => undefined);
  try {
    await client.connect();
    const res = await client.query<{ ms: string | null }>(
      `SELECT EXTRACT(EPOCH FROM (started_at - dispatched_at)) * 1000 AS ms
         FROM tasks WHERE execution_id = ANY($1::text[]) AND started_at IS NOT NULL`,
      [ids],
    );
    const samples = res.rows.map((r) => Number(r.ms)).filter((v) => Number.isFinite(v));
    return { samples, expected: ids.length * 3 };
  } catch (err) {
    return { na: `reading the engine's tasks table failed: ${(err as Error).message}` };
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * Each flow's hops from executions.created_at/completed_at (engine clock) and its tasks'
 * dispatched_at (engine), started_at and completed_at (worker: metrics.startedAt/completedAt):
 * start → first dispatch (intake: the engine's commit of the start, measured from its row's
 * creation), dispatch → handler start, the handler, a result → the next step's dispatch (the
 * worker's publish, the engine's read and decision), the last result → the execution's end.
 * Same machine clock; millisecond resolution, so each sample is ±1 ms.
 */
async function hopsFromDb(databaseUrl: string, ids: string[]): Promise<HopSamples> {
  const client = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 5_000 });
  client.on("error", () => undefined);
  const ms = (a: Date | null, b: Date | null) => (a && b ? b.getTime() - a.getTime() : undefined);
  try {
    await client.connect();
    const res = await client.query<{ created_at: Date; completed_at: Date | null; tasks: Array<{ d: string; s: string | null; c: string | null }> }>(
      `SELECT e.created_at, e.completed_at,
              jsonb_agg(jsonb_build_object('d', t.dispatched_at, 's', t.started_at, 'c', t.completed_at) ORDER BY t.dispatched_at) AS tasks
         FROM executions e JOIN tasks t ON t.execution_id = e.id
        WHERE e.id = ANY($1::text[]) GROUP BY e.id`,
      [ids],
    );
    const hops: Record<(typeof HOPS)[number], number[]> = { startToFirstDispatch: [], dispatchToHandlerStart: [], handler: [], resultToNextDispatch: [], lastResultToCompleted: [] };
    const push = (hop: (typeof HOPS)[number], v: number | undefined) => v !== undefined && Number.isFinite(v) && hops[hop].push(v);
    const date = (iso: string | null) => (iso ? new Date(iso) : null);
    for (const row of res.rows) {
      const tasks = row.tasks.map((t) => ({ d: date(t.d), s: date(t.s), c: date(t.c) }));
      push("startToFirstDispatch", ms(row.created_at, tasks[0]?.d ?? null));
      tasks.forEach((t, i) => {
        push("dispatchToHandlerStart", ms(t.d, t.s));
        push("handler", ms(t.s, t.c));
        const next = tasks[i + 1];
        if (next) push("resultToNextDispatch", ms(t.c, next.d));
      });
      push("lastResultToCompleted", ms(tasks.at(-1)?.c ?? null, row.completed_at));
    }
    return hops;
  } catch (err) {
    return { na: `reading the engine's tables failed: ${(err as Error).message}` };
  } finally {
    await client.end().catch(() => undefined);
  }
}
