/** Test helpers for the worker suites: tasks, a provisioned mesh per test, results read back. */
import { randomUUID } from "node:crypto";
import {
  type BlobStore,
  createNames,
  decode,
  encode,
  type Names,
  type Priority,
  provisionMesh,
  silentLogger,
  Task,
  type TaskInput,
  TaskResult,
} from "@flowmonkey/shared";
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { uniquePrefix } from "../../test/support/nats.js";
import { waitFor } from "../../test/support/wait.js";
import { executeTask, type TaskRuntime } from "../src/runner/execute-task.js";
import type { Outcome } from "../src/runner/outcome.js";
import type { AnyHandler } from "../src/sdk/define-handler.js";

export const REGION = "test-1";

export function makeTask(overrides: Partial<TaskInput> & { type?: string } = {}): TaskInput {
  const { type = "echo", ...rest } = overrides;
  const id = randomUUID();
  return {
    taskId: id,
    executionId: `exec-${id.slice(0, 8)}`,
    flowId: "flow",
    flowVersion: 1,
    stepId: "step",
    attempt: 1,
    handler: { type },
    input: {},
    context: {},
    config: { timeoutMs: 30_000, retries: 0, backoff: { kind: "fixed", initialDelayMs: 1000, maxDelayMs: 1000, jitter: false } },
    metadata: { region: REGION, priority: "normal", dispatchedAt: new Date().toISOString() },
    ...rest,
  };
}

export interface Mesh {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  names: Names;
  close(): Promise<void>;
}

/** A connection and a freshly provisioned mesh under a unique prefix. */
export async function openMesh(url: string, heartbeatTimeoutMs = 60_000): Promise<Mesh> {
  const nc = await connect({ servers: url });
  const names = createNames(uniquePrefix());
  await provisionMesh(nc, names, { heartbeatTimeoutMs });
  return { nc, js: jetstream(nc), jsm: await jetstreamManager(nc), names, close: () => nc.close() };
}

export async function publishTask(mesh: Mesh, task: TaskInput, handler = task.handler.type): Promise<void> {
  await mesh.js.publish(mesh.names.subjects.task(REGION, handler, "normal"), encode(task));
}

/** Every result stored so far, read by sequence without consuming them (the stream is a work queue). */
export async function storedResults(mesh: Mesh): Promise<TaskResult[]> {
  const info = await mesh.jsm.streams.info(mesh.names.streams.results);
  const out: TaskResult[] = [];
  for (let seq = info.state.first_seq; info.state.messages > 0 && seq <= info.state.last_seq; seq++) {
    const msg = await mesh.jsm.streams.getMessage(mesh.names.streams.results, { seq });
    if (msg) out.push(decode(msg.data, TaskResult));
  }
  return out;
}

export async function waitForResults(mesh: Mesh, n: number, timeoutMs = 20_000): Promise<TaskResult[]> {
  return waitFor(
    async () => {
      const info = await mesh.jsm.streams.info(mesh.names.streams.results);
      return info.state.messages >= n ? storedResults(mesh) : false;
    },
    { timeoutMs, message: `${n} results on ${mesh.names.streams.results}` },
  );
}

export async function poolInfo(mesh: Mesh, handler: string, priority: Priority = "normal") {
  return mesh.jsm.consumers.info(mesh.names.streams.tasks, mesh.names.consumers.taskPool(REGION, handler, priority));
}

/** The blob bucket of unit tests: there is none, and every use says so. */
export const NO_BLOBS: BlobStore = {
  bucket: "none",
  put: () => Promise.reject(new Error("no blob store in unit tests")),
  get: () => Promise.reject(new Error("no blob store in unit tests")),
  has: () => Promise.reject(new Error("no blob store in unit tests")),
  delete: () => Promise.reject(new Error("no blob store in unit tests")),
};

/** Runs a handler the way the worker does (input schema, timeout, context), without NATS. */
export function runHandler(
  handler: AnyHandler,
  task: TaskInput,
  vaultKeys?: TaskRuntime["vaultKeys"],
): { outcome: Promise<Outcome>; abort(reason: Error): void; published: string[] } {
  const published: string[] = [];
  const nc = { publish: (subject: string) => void published.push(subject) } as unknown as NatsConnection;
  const runtime: TaskRuntime = {
    workerId: "w-test",
    tier: "small",
    region: REGION,
    log: silentLogger(),
    progress: { nc, subjects: createNames("fm").subjects, kv: undefined },
    checkpoints: { kv: undefined, blobs: NO_BLOBS },
    blobs: NO_BLOBS,
    js: { publish: async (subject: string) => void published.push(subject) } as unknown as JetStreamClient,
    ...(vaultKeys ? { vaultKeys } : {}),
  };
  const parsed = Task.parse(task);
  const running = executeTask(parsed, handler, runtime, { working: () => undefined, deliveryCount: 1 });
  return { outcome: running.outcome, abort: (reason) => running.abort(reason), published };
}

/** A promise with its resolve exposed, for handlers that must wait on the test. */
export function gate<T = void>(): { promise: Promise<T>; open(value: T): void } {
  let open!: (value: T) => void;
  const promise = new Promise<T>((resolve) => (open = resolve));
  return { promise, open };
}
