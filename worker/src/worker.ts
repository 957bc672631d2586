import {
  leaseExpressionPool,
  abortableDelay,
  createNames,
  decode,
  deferred,
  ExecutionEvent,
  FmError,
  nakAdvisorySubject,
  once,
  openBlobStoreLazily,
  openRegionBlobStore,
  PRIORITIES,
  Releasers,
  serveMetrics,
  type BlobStore,
  type Service,
  toError,
} from "@flowmonkey/shared";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { Objm } from "@nats-io/obj";
import { hostname } from "node:os";
import type { CheckpointSink } from "./plumbing/checkpoints.js";
import type { ProgressSink } from "./plumbing/progress.js";
import { createWorkerMetrics, type WorkerMetrics } from "./metrics/worker-metrics.js";
import { startPresence } from "./presence/registry-entry.js";
import { openTaskPool } from "./runner/open-pool.js";
import { Puller } from "./runner/puller.js";
import { TaskPipeline } from "./runner/task-pipeline.js";
import { WORKER_VERSION } from "./version.js";
import { resolveWorkerOptions, type WorkerOptions } from "./worker-options.js";
import { transform } from "./handlers/transform.js";

/** All a worker reads of an execution's `cancelled` / `failed` event: when it ended. */
const EndedAt = ExecutionEvent.pick({ at: true });

export interface WorkerStats {
  /** Tasks delivered to this worker and not yet settled. */
  running: number;
  /** Slots promised to open fetches that have not delivered yet. */
  requested: number;
  /** Tasks whose success result was stored. */
  completed: number;
  /** Tasks whose failure or error result was stored. */
  failed: number;
}

export interface Worker extends Service {
  readonly workerId: string;
  /** `http://host:port/metrics` once started with `metrics`; undefined otherwise. */
  readonly metricsUrl: string | undefined;
  stats(): WorkerStats;
}

/**
 * The worker's composition root: one task pool per handler type sharing one set of slots, a
 * registry entry, and the lifecycle (start → drain → close). Everything acquired pushes its
 * release; close releases in reverse.
 */
/** How often an idle lane asks the server for tasks no doorbell announced (a backlog, a redelivery). */
const LANE_WATCH_MS = 2000;
/** How often a leaf worker tries again to open the hub's buckets while its link is down. */
const HUB_BUCKETS_RETRY_MS = 1000;

export function createWorker(options: WorkerOptions): Worker {
  const o = resolveWorkerOptions(options);
  const { nc, region, workerId } = o;
  const names = createNames(o.prefix);
  const log = o.log.child({ workerId, region });
  const releasers = new Releasers();
  const closedSignal = deferred<Error | undefined>();
  const startedAt = new Date().toISOString();
  const handlerTypes = [...o.handlers.keys()];
  const js = jetstream(nc);
  // On a leaf region the buckets are the hub's; the task queue and results stay in the leaf's domain.
  const bucketJs = o.hubDomain ? jetstream(nc, { domain: o.hubDomain }) : js;
  const kvm = new Kvm(bucketJs);
  let closeReason: Error | undefined;
  let closing = false;
  let starting: Promise<void> | undefined;

  const progressSink: ProgressSink = { nc, subjects: names.subjects, kv: undefined, minIntervalMs: o.progressIntervalMs };
  // The region's blob bucket, opened on first use: only large checkpoints and offloaded contexts need it.
  const blobs = o.blobs ?? openRegionBlobStore(bucketJs, names.regionBuckets.blobs(region));
  const otherBuckets = new Map<string, BlobStore>();
  const blobsNamed = (bucket: string): BlobStore => {
    let store = otherBuckets.get(bucket);
    if (!store) otherBuckets.set(bucket, (store = openBlobStoreLazily(bucketJs, bucket)));
    return store;
  };
  const checkpointSink: CheckpointSink = { kv: undefined, blobs };
  // Created up front (cheap, no I/O) so the pipeline reports into it; served only when asked for.
  const metrics: WorkerMetrics | undefined = o.metrics ? createWorkerMetrics({ region, concurrency: o.concurrency, running: (): number => puller.slots.running, processMetrics: o.metrics.processMetrics }) : undefined;
  let metricsUrl: string | undefined;
  const pipeline = new TaskPipeline({
    observer: metrics,
    runtime: { workerId, region, log, progress: progressSink, checkpoints: checkpointSink, blobs, ...(o.blobs ? {} : { blobsNamed }), js, tier: o.tier, vaultKeys: o.vaultKeys, announceRuns: true },
    handlers: o.handlers,
    capabilities: o.capabilities,
    results: { js, subject: names.subjects.results(region), maxBytes: () => nc.info?.max_payload ?? 1024 * 1024 },
  });
  const puller = new Puller({ concurrency: o.concurrency, log, run: (pool, msg) => pipeline.run(msg, pool.heartbeat) });

  const start = (): Promise<void> => (starting ??= doStart());

  async function doStart(): Promise<void> {
    try {
      const jsm = await jetstreamManager(nc);
      if (o.handlers.get(transform.type) === transform) {
        // The transform handler's evaluator processes, warm before the first task is pulled.
        const expressions = leaseExpressionPool(o.expressions, log);
        releasers.add("expression pool", () => expressions.release());
        await expressions.pool.warm();
      }
      if (o.sandbox) {
        const sandbox = o.sandbox;
        releasers.add("sandboxes", () => sandbox.close());
        // Bundles are verified and the warm pools started before any task can be pulled.
        await sandbox.start(() => new Objm(nc).open(names.buckets.handlers));
      }
      // The pools wait for the engine to provision the mesh; the buckets exist once they are open.
      // Every handler's plain pool, and, for a worker with capabilities, the handler's pool of
      // workers with exactly this capability set (where routing sends the tasks that require
      // some of them): the only tasks no worker without those capabilities can take.
      const poolSets: Array<readonly string[]> = o.capabilities.length > 0 ? [[], o.capabilities] : [[]];
      const pools = await Promise.all(
        handlerTypes.flatMap((handler) =>
          poolSets.flatMap((capabilities) =>
            PRIORITIES.map((priority) =>
              openTaskPool({
                ...{ js, jsm, names, region, handler, priority, capabilities, fetchExpiresMs: o.fetchExpiresMs, hooks: puller, log },
                heartbeatTimeoutMs: o.heartbeatTimeouts.get(handler)!,
              }),
            ),
          ),
        ),
      );
      if (o.hubDomain) {
        // A leaf region's worker runs its region's tasks with the link to the hub down: the hub's
        // buckets (registry, progress, checkpoints) are opened in the background, retried until
        // the link is there; until then progress stays live-only and checkpoints fail UNAVAILABLE.
        const opening = openHubBucketsUntilOpen();
        releasers.add("hub buckets", () => opening.stop());
      } else {
        await openBuckets();
      }
      for (const pool of pools) {
        puller.addPool(pool);
        // Heartbeats run on through a drain; they stop only when the worker closes.
        releasers.add(`heartbeat ${pool.pool} ${pool.priority}`, () => pool.heartbeat.stop());
        pool.watch(LANE_WATCH_MS);
        // The lane's doorbell: a copy of each task as it is published. An idle lane holds no pull
        // (and no slot); the copy makes it fetch at once, so a worker with fewer slots than lanes
        // still starts a task in any of them within a round trip, and a busy worker takes the
        // best-ranked waiting task when a slot frees.
        // The server's nak advisory is the other: a task handed back (a draining worker, an
        // aborted run) is due again at once, and no publish says so.
        for (const subject of [names.subjects.task(region, pool.handler, pool.priority, pool.capabilities), nakAdvisorySubject(names.streams.tasks, pool.consumerName)]) {
          const sub = nc.subscribe(subject, { callback: () => pool.ring() });
          releasers.add(`doorbell ${subject}`, () => sub.unsubscribe());
        }
      }
      // An execution that ends while its steps run here (cancelled, or failed by another step):
      // its handlers are stopped and their slots freed, not left to run to an ignored result.
      for (const how of ["cancelled", "failed"] as const) {
        const sub = nc.subscribe(names.subjects.execOfType(how), {
          callback: (_err, msg) => {
            const ended = names.subjects.parseExec(msg.subject);
            if (!ended) return;
            try {
              const { at } = decode(msg.data, EndedAt, { what: `execution event on ${msg.subject}` });
              pipeline.stopExecution(ended.executionId, how, Date.parse(at));
            } catch (err) {
              log.warn({ err: toError(err), executionId: ended.executionId }, "ignored an execution event that does not parse");
            }
          },
        });
        releasers.add(`execution ${how} events`, () => sub.unsubscribe());
      }
      if (metrics && o.metrics) {
        const listener = await serveMetrics(metrics.registry, { port: o.metrics.port, host: o.metrics.host, log });
        releasers.add("metrics listener", () => listener.close());
        metricsUrl = listener.url;
      }
      puller.start();
      void nc.closed().then((err) => {
        if (closing) return;
        closeReason = err ?? new FmError("UNAVAILABLE", "the NATS connection closed under the worker");
        void close();
      });
      log.info({ handlers: handlerTypes, capabilities: o.capabilities, pools: [...new Set(pools.map((p) => p.pool))], concurrency: o.concurrency, heartbeatIntervalMs: pools[0]?.heartbeat.intervalMs }, "worker started");
    } catch (thrown) {
      await releasers.releaseAll().catch(() => undefined); // the start error is the one to report
      throw thrown;
    }
  }

  /** The buckets and the registry entry; the entry goes last, so an entry means a worker ready for tasks. */
  async function openBuckets(): Promise<void> {
    const [progressKv, workersKv, checkpointsKv] = await Promise.all([
      kvm.open(names.buckets.progress),
      kvm.open(names.buckets.workers),
      // Direct gets address the key in the subject, where the permissions can scope it to this
      // region's keys (the body-addressed STREAM.MSG.GET cannot be); nats.js binds without them.
      kvm.open(names.buckets.checkpoints, { allow_direct: true }),
    ]);
    progressSink.kv = progressKv;
    checkpointSink.kv = checkpointsKv;
    const presence = await startPresence(
      workersKv,
      () => ({ workerId, region, handlers: handlerTypes, capabilities: [...o.capabilities], capabilityPools: true, concurrency: o.concurrency, inFlight: puller.slots.running, version: WORKER_VERSION, host: hostname(), startedAt }),
      log,
    );
    releasers.add("registry entry", () => presence.stop());
  }

  function openHubBucketsUntilOpen(): { stop(): Promise<void> } {
    const abort = new AbortController();
    const done = (async () => {
      for (let attempt = 1; !abort.signal.aborted; attempt++) {
        try {
          await openBuckets();
          if (attempt > 1) log.info({ hubDomain: o.hubDomain, attempt }, "the hub's buckets are open");
          return;
        } catch (thrown) {
          if (attempt === 1) log.warn({ err: toError(thrown), hubDomain: o.hubDomain }, "the hub's buckets are out of reach (link down?); running tasks anyway, retrying");
          await abortableDelay(HUB_BUCKETS_RETRY_MS, abort.signal);
        }
      }
    })();
    return {
      async stop() {
        abort.abort();
        await done;
      },
    };
  }

  let draining: Promise<void> | undefined;
  const drain = (deadlineMs: number = Date.now()): Promise<void> => (draining ??= doDrain(deadlineMs));

  async function doDrain(deadlineMs: number): Promise<void> {
    // Stop during start waits for it; a worker never started, or whose start failed, has nothing to drain.
    if (!(await starting?.then(() => true, () => false))) return;
    pipeline.stopAccepting();
    await puller.stop();
    const { slots } = puller;
    const left = deadlineMs - Date.now();
    if (slots.running > 0 && left > 0) {
      log.info({ running: slots.running, graceMs: left }, "draining: waiting for running tasks");
      const timeUp = new AbortController();
      await Promise.race([slots.idle(), abortableDelay(left, timeUp.signal)]);
      timeUp.abort();
    }
    if (slots.running > 0) {
      const aborted = pipeline.abortAll(new FmError("WORKER_SHUTDOWN", "the worker stopped before the handler finished"));
      log.warn({ aborted }, "drain deadline passed: aborted running tasks; they go back to the queue");
      await slots.idle();
    }
  }

  const close = once(async () => {
    closing = true;
    let first: Error | undefined = closeReason;
    try {
      await drain(Date.now());
    } catch (thrown) {
      first ??= toError(thrown);
    }
    await releasers.releaseAll((name, err) => log.warn({ err, resource: name }, "release failed")).catch((err: unknown) => {
      first ??= toError(err);
    });
    if (!nc.isClosed()) {
      // Acks and naks are fire-and-forget publishes: push them out before anyone closes the socket.
      await (o.ownsConnection ? nc.drain() : nc.flush()).catch((err: unknown) => log.warn({ err: toError(err) }, "nats flush failed"));
    }
    log.info({ completed: pipeline.stats.completed, failed: pipeline.stats.failed }, "worker closed");
    closedSignal.resolve(first);
  });

  return {
    workerId,
    get metricsUrl() {
      return metricsUrl;
    },
    start,
    drain,
    close,
    closed: () => closedSignal.promise,
    stats: () => ({ running: puller.slots.running, requested: puller.slots.requested, ...pipeline.stats }),
  };
}
