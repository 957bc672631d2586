/**
 * A whole mesh in the test process: engine and workers built with their factories against a
 * real nats-server and a real PostgreSQL database, on a unique prefix. close() releases
 * everything in reverse order; tests assert through the public API and subjects only.
 */
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { createEngine, type Engine, type EngineOptions } from "@flowmonkey/engine";
import { createWorker, type Worker, type WorkerOptions } from "@flowmonkey/worker";
import { afterAll, beforeAll } from "vitest";
import {
  createApiClient,
  createLogger,
  createNames,
  Releasers,
  type ApiClient,
  type ExecutionView,
  type FlowDefinitionInput,
  type Logger,
  type Names,
} from "@flowmonkey/shared";
import { uniquePrefix } from "./nats.js";
import { waitFor } from "./wait.js";

export interface MeshOptions {
  natsUrl: string;
  /** PostgreSQL URL; undefined = embedded PGlite under dataDir. */
  databaseUrl?: string;
  dataDir?: string;
  prefix?: string;
  /** Worker pools to start: one worker per entry. Default: one us-east-1 worker with every built-in. */
  workers?: Array<{ region?: string; handlers?: string[]; concurrency?: number }>;
  heartbeatTimeoutMs?: number;
  maxMessageBytes?: number;
  /** More engine options (deadline grace, sweep interval...). */
  engine?: Partial<Omit<EngineOptions, "nc" | "log" | "prefix">>;
  log?: Logger;
}

export interface TestMesh {
  prefix: string;
  names: Names;
  nc: NatsConnection;
  api: ApiClient;
  engine: Engine;
  putFlow(definition: FlowDefinitionInput): Promise<{ flowId: string; version: number }>;
  /** One more worker on this mesh (built-in names or handler definitions); closed with the mesh. */
  startWorker(options: {
    handlers: NonNullable<WorkerOptions["handlers"]>;
    concurrency?: number;
    region?: string;
    /** Any other worker option (vault keys...). */
    worker?: Partial<Omit<WorkerOptions, "nc" | "log" | "prefix" | "handlers" | "region">>;
    /** The blob store the worker reads through (tests wrap it to see which blobs are read). */
    blobs?: WorkerOptions["blobs"];
  }): Promise<Worker>;
  waitForStatus(executionId: string, status: ExecutionView["status"] | ExecutionView["status"][], timeoutMs?: number): Promise<ExecutionView>;
  close(): Promise<void>;
}

export async function startMesh(options: MeshOptions): Promise<TestMesh> {
  const prefix = options.prefix ?? uniquePrefix();
  const log = options.log ?? createLogger({ name: "test", level: process.env.TEST_LOG_LEVEL ?? "silent" });
  const releasers = new Releasers();
  try {
    const nc = await connect({ servers: options.natsUrl, noAsyncTraces: true });
    releasers.add("nats", () => nc.close());
    const engine = createEngine({
      nc,
      log: log.child({ component: "engine" }),
      prefix,
      databaseUrl: options.databaseUrl,
      ...(options.dataDir ? { dataDir: options.dataDir } : {}),
      heartbeatTimeoutMs: options.heartbeatTimeoutMs ?? 10_000,
      ...(options.maxMessageBytes ? { maxMessageBytes: options.maxMessageBytes } : {}),
      ...options.engine,
    });
    await engine.start();
    releasers.add("engine", () => engine.close());
    for (const w of options.workers ?? [{}]) {
      const worker = createWorker({
        nc,
        log: log.child({ component: "worker" }),
        prefix,
        region: w.region ?? "us-east-1",
        ...(w.handlers ? { handlers: w.handlers } : {}),
        concurrency: w.concurrency ?? 16,
        heartbeatTimeoutMs: options.heartbeatTimeoutMs ?? 10_000,
        fetchExpiresMs: 1000,
      });
      await worker.start();
      releasers.add("worker", () => worker.close());
    }
    const api = createApiClient(nc, { prefix });
    return {
      prefix,
      names: createNames(prefix),
      nc,
      api,
      engine,
      putFlow: (definition) => api.putFlow(definition),
      async startWorker(w) {
        const worker = createWorker({
          nc,
          log: log.child({ component: "worker" }),
          prefix,
          region: w.region ?? "us-east-1",
          handlers: w.handlers,
          concurrency: w.concurrency ?? 16,
          heartbeatTimeoutMs: options.heartbeatTimeoutMs ?? 10_000,
          fetchExpiresMs: 1000,
          ...w.worker,
          ...(w.blobs ? { blobs: w.blobs } : {}),
        });
        await worker.start();
        releasers.add("worker", () => worker.close());
        return worker;
      },
      async waitForStatus(executionId, status, timeoutMs = 15_000) {
        const wanted = Array.isArray(status) ? status : [status];
        return waitFor(
          async () => {
            const view = await api.get(executionId).catch(() => undefined);
            return view && wanted.includes(view.status) ? view : undefined;
          },
          { timeoutMs, message: `execution ${executionId} to reach ${wanted.join("|")}` },
        );
      },
      close: () => releasers.releaseAll(),
    };
  } catch (err) {
    await releasers.releaseAll().catch(() => undefined);
    throw err;
  }
}

/**
 * A mesh for the whole test file: started in beforeAll (after the nats-server and database
 * fixtures, whose URLs `options` reads), closed in afterAll. The returned object stands for the
 * mesh and is usable inside tests and hooks only.
 */
export function useMesh(options: () => MeshOptions): TestMesh {
  let mesh: TestMesh | undefined;
  beforeAll(async () => {
    mesh = await startMesh(options());
  });
  afterAll(async () => {
    await mesh?.close();
    mesh = undefined;
  });
  return new Proxy({} as TestMesh, {
    get(_target, key) {
      if (!mesh) throw new Error("useMesh(): the mesh is only available inside tests and hooks of this file");
      return mesh[key as keyof TestMesh];
    },
  });
}
