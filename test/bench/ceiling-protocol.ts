/**
 * The raw-JetStream ceiling's streams, subjects and message shapes: the same path a mesh task
 * takes (work-queue stream → pull consumer → ack, result → work-queue stream → consumer) with no
 * engine, no database and no schema validation. Its own prefix, so it never meets the mesh's.
 */
import { AckPolicy, DeliverPolicy, RetentionPolicy, StorageType, type JetStreamManager } from "@nats-io/jetstream";
import { nanos } from "@nats-io/nats-core";

export const CEILING = {
  tasksStream: "BENCH_CEILING_TASKS",
  resultsStream: "BENCH_CEILING_RESULTS",
  tasksSubject: "bench.tasks.us-east-1.echo.normal",
  tasksFilter: "bench.tasks.>",
  resultsSubject: "bench.results.us-east-1",
  resultsFilter: "bench.results.>",
  workerConsumer: "bench_worker",
  collectorConsumer: "bench_collector",
} as const;

/** A task shaped and sized like the mesh's (fields a worker would read), plus the bench's clock. */
export interface CeilingTask {
  taskId: string;
  executionId: string;
  flowId: string;
  flowVersion: number;
  stepId: string;
  step: number;
  attempt: number;
  handler: { type: string };
  input: unknown;
  context: Record<string, unknown>;
  config: { timeoutMs: number; retries: number; backoff: { kind: string } };
  vault: Record<string, string>;
  metadata: { region: string; priority: string; dispatchedAt: string };
  /** Wall-clock ms (sub-ms) when the task was made, i.e. dispatched. */
  t: number;
}

export interface CeilingResult {
  taskId: string;
  executionId: string;
  stepId: string;
  step: number;
  attempt: number;
  outcome: "success";
  output: unknown;
  metrics: { startedAt: string; completedAt: string; durationMs: number; workerId: string; region: string };
  /** Dispatch → handler start in ms, measured by the worker on arrival. */
  d: number;
}

export function ceilingTask(executionId: string, step: number, input: unknown, t: number): CeilingTask {
  return {
    taskId: `${executionId}/s${step}`,
    executionId,
    flowId: "bench3",
    flowVersion: 1,
    stepId: `s${step}`,
    step,
    attempt: 1,
    handler: { type: "echo" },
    input,
    context: {},
    config: { timeoutMs: 30_000, retries: 0, backoff: { kind: "none" } },
    vault: {},
    metadata: { region: "us-east-1", priority: "normal", dispatchedAt: new Date(t).toISOString() },
    t,
  };
}

/** Streams and consumers configured like the mesh's FM_TASKS / FM_RESULTS and their consumers. */
export async function provisionCeiling(jsm: JetStreamManager, workerConcurrency: number): Promise<void> {
  const base = {
    storage: StorageType.File,
    num_replicas: 1,
    retention: RetentionPolicy.Workqueue,
    duplicate_window: nanos(120_000),
    max_age: nanos(14 * 24 * 3600_000),
  };
  await jsm.streams.add({ ...base, name: CEILING.tasksStream, subjects: [CEILING.tasksFilter] });
  await jsm.streams.add({ ...base, name: CEILING.resultsStream, subjects: [CEILING.resultsFilter] });
  await jsm.consumers.add(CEILING.tasksStream, {
    durable_name: CEILING.workerConsumer,
    filter_subject: CEILING.tasksFilter,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: nanos(60_000),
    max_deliver: 5,
    // The worker's concurrency: at most this many tasks taken and not yet acked.
    max_ack_pending: workerConcurrency,
  });
  await jsm.consumers.add(CEILING.resultsStream, {
    durable_name: CEILING.collectorConsumer,
    filter_subject: CEILING.resultsFilter,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: nanos(30_000),
    max_ack_pending: 20_000,
  });
}

export async function removeCeiling(jsm: JetStreamManager): Promise<void> {
  for (const s of [CEILING.tasksStream, CEILING.resultsStream]) await jsm.streams.delete(s).catch(() => false);
}
