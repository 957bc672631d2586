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

export interface MeshSystem extends FlowSystem {
  /** The first engine process. */
  readonly engine: ChildHandle;
  readonly engines: readonly ChildHandle[];
  readonly worker: ChildHandle;
  readonly flow: Record<string, unknown>;
  /** Dispatch → handler start (ms) of these executions' tasks, from the engine's tasks table. */
  dispatchSamples(ids: string[]): Promise<DispatchSamples>;
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
