import { jetstream, jetstreamManager, type JsMsg } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import type { ServiceMsg } from "@nats-io/services";
import {
  createBatcher,
  createNames,
  DEFAULT_RETENTION,
  deferred,
  FmError,
  once,
  openBlobStoreLazily,
  periodMs,
  provisionMesh,
  Releasers,
  serveMetrics,
  toError,
  leaseExpressionPool,
  type ExpressionBounds,
  type Logger,
  type PoolPublicKeys,
  type RegionTopology,
  type ResidencyRules,
  type RetentionPeriod,
  type Service,
  type TaskResult,
} from "@flowmonkey/shared";
import { startApiService } from "./api/service.js";
import { operatorHandlers } from "./api/operator.js";
import { lookUpTask } from "./api/task-lookup.js";
import { LanePauses } from "./control/lane-pauses.js";
import { createEngineMetrics } from "./metrics/engine-metrics.js";
import { executionSummary, executionView, sendableView } from "./api/views.js";
import { respond } from "./api/respond.js";
import { startPausableLoop } from "./consumers/pausable-loop.js";
import { startPullLoop } from "./consumers/pull-loop.js";
import { cancelExecution } from "./control/cancel-execution.js";
import { createContextOffload, DEFAULT_CONTEXT_INLINE_MAX_BYTES } from "./context/offload.js";
import { createDeadTaskProcessor } from "./dead-letters/advisory-consumer.js";
import { replayDeadTasks } from "./dead-letters/replay.js";
import { unservedHandlerWarnings } from "./flows/unserved-handlers.js";
import { createFlowRegistry } from "./flows/registry.js";
import { createIntakeProcessor, type IntakeItem } from "./intake/flow-start-consumer.js";
import { watchTaskQueue } from "./intake/overload.js";
import { createRelay } from "./outbox/relay.js";
import { createResultProcessor } from "./results/result-consumer.js";
import { openDb, type Db } from "./store/db.js";
import { listDeadTasks } from "./store/dead-tasks.js";
import { attemptsOf, regionsRunIn } from "./store/tasks.js";
import { usageOf } from "./store/usage.js";
import { getExecution, listExecutions } from "./store/executions.js";
import { migrate } from "./store/migrate.js";
import { listTenantLanes, setDefaultTenantMaxInFlight } from "./store/tenant-lanes.js";
import { CircuitBreakers, type CircuitOptions } from "./scheduler/circuit-breakers.js";
import { RateLimits, type RateRule } from "./scheduler/rate-limits.js";
import { startDeadlineSweep } from "./timeouts/deadline-sweep.js";
import { startContextBlobCleanup } from "./context/blob-cleanup.js";
import { createBlobBuckets } from "./context/blob-buckets.js";
import { createContextCarry } from "./context/context-carry.js";
import { createCheckpointCarry } from "./context/checkpoint-carry.js";
import { startRetentionSweep } from "./retention/retention-sweep.js";
import { listPausedLanes } from "./store/paused-lanes.js";
import { scheduleApi, startScheduleTicker } from "./schedules/schedules.js";
import { watchRunningSteps } from "./api/running-steps.js";
import { subflowStarter } from "./execution/subflow-starter.js";
import type { ChildStart } from "./store/outbox.js";
import { startExecutions } from "./intake/start-execution.js";
import { createEventCatchUp, DEFAULT_CATCH_UP_GRACE_MS } from "./waits/event-catch-up.js";
import { createEventProcessor } from "./waits/event-consumer.js";
import { createResumeProcessor } from "./waits/resume-waits.js";
import { startWaitTimer } from "./waits/wait-timer.js";
import { watchStrandedResults } from "./results/stranded-results.js";
import { applyResults } from "./results/apply-result.js";
import { forgetSecret, listSecrets, rotateSecrets, secretsPublicKey, storeSecret } from "./vault/secrets-api.js";
import { createVault } from "./vault/vault.js";
import { withContextOffload, withExecutionCache, withPayloadGuard } from "./store/transition.js";
import { createExecutionCache } from "./store/execution-cache.js";
import { createPayloadGuard } from "./outbox/payload-guard.js";
import { createDomainManagers, queueSources } from "./regions/domain-managers.js";
import { provisionLeafRegions } from "./regions/provision-regions.js";
import type { RegionLoad } from "./regions/region-load.js";
import { startRouting } from "./regions/routing.js";

export const ENGINE_VERSION = "0.1.0";
export const DEFAULT_TASK_QUEUE_LIMIT = 1_000_000;
export const DEFAULT_TENANT_MAX_IN_FLIGHT = 1000;
/** nats-server's default max_payload, used only before the server's INFO has arrived. */
const DEFAULT_MAX_PAYLOAD = 1024 * 1024;

export interface EngineOptions {
  nc: NatsConnection;
  log: Logger;
  prefix?: string;
  /** Region of executions that name none. */
  region?: string;
  /** PostgreSQL URL; absent = embedded PGlite under dataDir. */
  databaseUrl?: string | undefined;
  dataDir?: string;
  heartbeatTimeoutMs?: number;
  maxMessageBytes?: number;
  maxBatch?: number;
  /** Batches in their transaction at once, per consumer (2 overlaps one batch's I/O with the next one's CPU). */
  batchConcurrency?: number;
  /**
   * Running executions whose last committed state this engine keeps, so that their next result
   * is decided without reading the row (the write checks the row version). 0 turns it off. Default 10,000.
   */
  executionCacheEntries?: number;
  dbPoolSize?: number;
  /** Most tasks queued in FM_TASKS (its max_msgs); near it, new starts are refused with OVERLOADED. Default 1,000,000. */
  taskQueueLimit?: number;
  /** Tasks/s per lane (`<region>/<handler>`, `*` allowed); see RateLimits. */
  rateLimits?: RateRule[];
  /** Tasks/s of one tenant per lane (0 = none). */
  tenantRateLimit?: number;
  /** When a lane (region + handler type) is paused for its infrastructure failures; see CircuitBreakers. */
  circuit?: Partial<CircuitOptions>;
  /** Default cap on a tenant's tasks in flight per `<region>/<handler>` lane (0 = none). Default 1000. */
  tenantMaxInFlight?: number;
  /** How long after an attempt's deadline (dispatch + step timeout) the engine times it out itself. Default 60 s. */
  taskDeadlineGraceMs?: number;
  /** How often the engine looks for overdue attempts. Default 5 s. */
  deadlineSweepIntervalMs?: number;
  /** How long a step's checkpoint is kept after its last save (the fm_checkpoints bucket's TTL). Default 7 days. */
  checkpointTtlMs?: number;
  /**
   * How long an ended execution (tasks, dead letters, wait tokens, context blobs with it), a
   * rejection and an outbox dead letter are kept before the retention sweep forgets them
   * ("7d", "36h", "forever"). Default 7 days; a flow's `retention:` overrides it.
   */
  retention?: RetentionPeriod;
  /** The same in days (FM_RETENTION_DAYS); wins over `retention` when set; 0 keeps everything. */
  retentionDays?: number | undefined;
  /** How often each engine looks for due schedules. Default 250 ms. */
  scheduleTickMs?: number;
  /** How often the retention sweep runs. Default 60 s. */
  retentionSweepIntervalMs?: number;
  /** How long after an execution ends its offloaded context's blobs are deleted. Default 1 h. */
  contextBlobGraceMs?: number;
  /** How often the engine looks for such blobs. Default 60 s. */
  contextBlobSweepIntervalMs?: number;
  /** How often the engine looks for waits whose `waitUntil` has passed. Default 1 s. */
  waitTimerIntervalMs?: number;
  /**
   * A wait for an event is caught up on the events stored since its attempt was dispatched,
   * less this margin for clock skew between engine hosts and the NATS server. Default 1000 ms.
   */
  eventCatchUpClockSkewMs?: number;
  /** Most events of one name one catch-up reads (a longer backlog is logged, not read). Default 10,000. */
  eventCatchUpMaxEvents?: number;
  /**
   * How long after it was recorded a wait for an event whose catch-up has not completed (its
   * engine stopped between the commit and the catch-up, or the catch-up failed) is caught up by
   * the wait timer of any replica; a catch-up that keeps failing is retried after twice as long
   * each time, up to 5 min. Default 10,000 ms.
   */
  eventCatchUpGraceMs?: number;
  /**
   * Catch new event waits up right after the results that parked them commit (default true).
   * false leaves every catch-up to the sweep after `eventCatchUpGraceMs` — what an engine that
   * dies after each commit would do; for tests.
   */
  eventCatchUpOnCommit?: boolean;
  /** The 32-byte key secrets are encrypted with at rest (FM_VAULT_KEY). Absent: no vault. */
  vaultKey?: Uint8Array | undefined;
  /** Public keys of the worker pools the engine seals secrets for (FM_VAULT_POOL_KEYS). */
  vaultPoolKeys?: PoolPublicKeys | undefined;
  /** Keys secrets may still be under after a rotation (FM_VAULT_PREVIOUS_KEYS): read only, until `secrets rotate` is done. */
  vaultPreviousKeys?: readonly Uint8Array[] | undefined;
  /** A task whose context's JSON is larger than this carries a reference to it in the blob bucket instead. Default 256 KiB. */
  contextInlineMaxBytes?: number;
  /**
   * A hub with leaf regions (FM_HUB_DOMAIN + FM_REGION_DOMAINS): each leaf region's task queue
   * and results buffer are created in its own domain, and the hub sources its results.
   * Absent: one server holds every region's queue.
   */
  topology?: RegionTopology | undefined;
  /** Replicas of the hub's streams and buckets: 3 on a clustered hub (hub-cluster-*.conf). Default 1. */
  replicas?: number;
  /** FM_RESIDENCY: residency rule → allowed regions. A step naming a rule not here is held, never sent elsewhere. */
  residency?: ResidencyRules | undefined;
  /** Queued tasks by which an unpinned step's region may exceed the least busy allowed one before its task moves. Default 50. */
  routingBusyMargin?: number;
  /** How often the pools' backlogs are read for least-busy routing. Default 2000 ms. */
  regionLoadIntervalMs?: number;
  /** Serve Prometheus metrics (FM_METRICS_PORT); absent: no listener. */
  metrics?: EngineMetricsOptions | undefined;
  /**
   * Bounds of `{% %}` evaluation (FM_EXPRESSION_TIMEOUT_MS, FM_EXPRESSION_MEMORY_MB,
   * FM_EXPRESSION_PROCESSES): every expression but plain path lookups runs in a pool of
   * evaluator processes, killed past these. One pool per process: the first engine in a
   * process sets them.
   */
  expressions?: Partial<ExpressionBounds>;
  /** Drain and close `nc` when the engine closes (the binary owns its connection; tests share theirs). */
  ownsConnection?: boolean;
}

export interface EngineMetricsOptions {
  /** 0 = any free port; read `metricsUrl` after start(). */
  port: number;
  /** @default "127.0.0.1" */
  host?: string;
  /** CPU, heap and event-loop series of the process (the binary turns them on). @default false */
  processMetrics?: boolean;
  /** How often the pool consumers are read for queue depth. @default 5000 */
  queueRefreshMs?: number;
}

export interface Engine extends Service {
  /** The engine's database (tests and tools read it; nothing else writes it). */
  readonly db: Db;
  /** The pools' backlogs as routing sees them (multi-region or residency rules only). */
  readonly regionLoad: RegionLoad | undefined;
  /** `http://host:port/metrics` once started with `metrics`; undefined otherwise. */
  readonly metricsUrl: string | undefined;
}

/**
 * The composition root: provision NATS, open and migrate the store, then start the stages in
 * flow order (relay, results, intake, API). Closing releases them in reverse.
 */
export function createEngine(options: EngineOptions): Engine {
  const { nc, log } = options;
  const names = createNames(options.prefix);
  const maxMessageBytes = options.maxMessageBytes ?? 1024 * 1024;
  const maxBatch = options.maxBatch ?? 500;
  const releasers = new Releasers();
  const closedSignal = deferred<Error | undefined>();
  let db: Db | undefined;
  let regionLoad: RegionLoad | undefined;
  let metricsUrl: string | undefined;
  const loops: Array<{ stop(): Promise<void> }> = [];
  const batchers: Array<{ idle(): Promise<void> }> = [];

  const start = once(async () => {
    if (options.ownsConnection) releasers.add("nats connection", () => nc.drain());
    const taskQueueLimit = options.taskQueueLimit ?? DEFAULT_TASK_QUEUE_LIMIT;
    // The leaf regions' streams first: the hub's FM_RESULTS and FM_ADVISORIES source them, and a
    // source whose stream is missing when the hub stream is made is retried only after a backoff
    // (10 s, 20 s, ... up to 2 min on nats-server 2.10+).
    if (options.topology) {
      const regions = provisionLeafRegions(nc, names, options.topology, { heartbeatTimeoutMs: options.heartbeatTimeoutMs ?? 60_000, taskQueueLimit }, log);
      releasers.add("region provisioning", () => regions.stop());
      await regions.firstAttempt();
    }
    await provisionMesh(nc, names, {
      heartbeatTimeoutMs: options.heartbeatTimeoutMs ?? 60_000,
      taskQueueLimit,
      replicas: options.replicas ?? 1,
      ...(options.checkpointTtlMs === undefined ? {} : { checkpointTtlMs: options.checkpointTtlMs }),
      ...(options.topology ? { topology: options.topology } : {}),
    });
    const jsm = await jetstreamManager(nc);
    const expressions = leaseExpressionPool(options.expressions, log);
    releasers.add("expression pool", () => expressions.release());
    await expressions.pool.warm();
    log.info({ bounds: expressions.pool.bounds }, "expression evaluators ready");
    const store = await openDb({ databaseUrl: options.databaseUrl, dataDir: options.dataDir ?? ".flowmonkey", poolSize: options.dbPoolSize ?? 8 });
    db = store;
    releasers.add("database", () => store.close());
    const migrated = await migrate(store);
    await setDefaultTenantMaxInFlight(store, options.tenantMaxInFlight ?? DEFAULT_TENANT_MAX_IN_FLIGHT);
    log.info({ store: store.kind, schema: migrated.version, applied: migrated.applied }, "store ready");

    const registry = createFlowRegistry(store);
    const pauses = new LanePauses({ db: store, subjects: names.subjects, log });
    await pauses.start(1000);
    releasers.add("lane pauses", () => pauses.stop());
    // Large contexts go to the blob bucket of the task's region as tasks are written (store/transition.ts); a bucket opens with its first one.
    const blobs = createBlobBuckets(nc, names, options.replicas ?? 1);
    // Checkpoints and blobs are kept per region: a later attempt sent elsewhere gets its step's
    // checkpoint carried over, and a task moved elsewhere its offloaded context.
    const carryCheckpoint = createCheckpointCarry({ js: jetstream(nc), names, log, blobs, regionsRunIn: (taskId, attempt) => regionsRunIn(store, taskId, attempt) });
    const carryContext = createContextCarry({ db: store, blobs, log });
    const routing = await startRouting(nc, store, names, log, {
      topology: options.topology,
      residency: options.residency ?? {},
      ...(options.routingBusyMargin === undefined ? {} : { busyMargin: options.routingBusyMargin }),
      ...(options.regionLoadIntervalMs === undefined ? {} : { loadIntervalMs: options.regionLoadIntervalMs }),
      lanePaused: (region, handler) => pauses.isPaused(region, handler),
      carryCheckpoint,
      carryContext,
    });
    regionLoad = routing.load;
    releasers.add("region routing", () => routing.stop());
    /** Set once the apply environment exists (below); until then the relay's conclusions wait. */
    let conclude: ((results: TaskResult[]) => Promise<void>) | undefined;
    let subflows: { start(children: ChildStart[]): Promise<void>; cancel(ids: string[]): Promise<void> } | undefined;
    const starting = () => Promise.reject(new Error("the engine is still starting"));
    const relay = createRelay({
      db: store,
      nc,
      log,
      pauses,
      routing,
      conclude: (results) => (conclude ? conclude(results) : starting()),
      startChildren: (children) => (subflows ? subflows.start(children) : starting()),
      cancelChildren: (ids) => (subflows ? subflows.cancel(ids) : starting()),
      carryCheckpoint,
    });
    relay.start();
    releasers.add("outbox relay", () => relay.close());
    const breakers = new CircuitBreakers(options.circuit);
    const rates = new RateLimits({ rules: options.rateLimits ?? [], tenantPerSecond: options.tenantRateLimit ?? 0 });
    const vault = createVault({ key: options.vaultKey, previousKeys: options.vaultPreviousKeys, poolKeys: options.vaultPoolKeys });
    if (vault.configured) log.info({ keyId: vault.keyId, pools: vault.pools }, "vault ready");
    const contextOffload = createContextOffload({
      blobsOf: blobs.ofRegion,
      subjects: names.subjects,
      log,
      inlineMaxBytes: options.contextInlineMaxBytes ?? DEFAULT_CONTEXT_INLINE_MAX_BYTES,
    });
    // Nothing the server would refuse is committed to the outbox: tasks too large fail their step.
    const payloadGuard = createPayloadGuard({ maxPayload: () => nc.info?.max_payload ?? DEFAULT_MAX_PAYLOAD, subjects: names.subjects, log, offload: contextOffload });
    const guarded = withPayloadGuard(withContextOffload(store, contextOffload), payloadGuard);
    // Results of executions this engine last wrote are decided without reading their rows again.
    const cacheEntries = options.executionCacheEntries ?? 10_000;
    const transitionDb = cacheEntries > 0 ? withExecutionCache(guarded, createExecutionCache({ maxEntries: cacheEntries })) : guarded;
    const base = { db: transitionDb, registry, subjects: names.subjects, relay, log, maxMessageBytes, breakers, rates, vault };
    // The engine's own failures of tasks that cannot be sent are applied like any result.
    conclude = async (results) => relay.afterCommit((await applyResults(base, results)).committed);
    const js = jetstream(nc);
    /** A durable consumer feeding a group-commit batcher; pulling waits while the batcher or the relay is full. */
    const consumeInBatches = async <T>(stream: string, durable: string, process: (items: T[]) => Promise<void>, wrap: (msg: JsMsg) => T) => {
      const batcher = createBatcher(process, { maxBatch, concurrency: options.batchConcurrency ?? 2, onError: (err) => log.error({ err, stream }, "batch failed") });
      batchers.push(batcher);
      const loop = await startPausableLoop(
        async () =>
          startPullLoop({
            consumer: await js.consumers.get(stream, durable),
            maxMessages: maxBatch * 2,
            onMessage: (msg) => batcher.push(wrap(msg)),
            backpressure: () => (batcher.pending >= maxBatch * 2 ? batcher.idle().then(() => relay.capacity()) : relay.capacity()),
            log,
          }),
        (err) => log.warn({ err: toError(err), stream }, "consumer could not be restarted; trying again"),
      );
      loops.push(loop);
      return { batcher, loop };
    };
    const catchUp = createEventCatchUp({
      ...base,
      js,
      jsm,
      stream: names.streams.events,
      ...(options.eventCatchUpClockSkewMs === undefined ? {} : { clockSkewMs: options.eventCatchUpClockSkewMs }),
      ...(options.eventCatchUpMaxEvents === undefined ? {} : { maxEvents: options.eventCatchUpMaxEvents }),
    });
    const catchUpOnCommit = options.eventCatchUpOnCommit ?? true;
    await consumeInBatches(names.streams.results, names.consumers.results, createResultProcessor({ ...base, ...(catchUpOnCommit ? { catchUp } : {}) }), (msg) => msg);
    const stranded = watchStrandedResults({
      jsm,
      stream: names.streams.results,
      consumer: names.consumers.results,
      log,
      subjects: names.subjects,
      maxMessageBytes,
      async apply(results) {
        const { committed } = await applyResults(base, results);
        relay.afterCommit(committed);
      },
    });
    releasers.add("stranded results", () => stranded.stop());
    const domains = createDomainManagers(nc, options.topology, { timeoutMs: 5000 });
    // Queue views read every domain at once with a shorter timeout: a half-dead link must not make the whole reply late.
    const queueReads = await queueSources(createDomainManagers(nc, options.topology, { timeoutMs: 3000 }), options.topology);
    await consumeInBatches(names.streams.advisories, names.consumers.deadTasks, createDeadTaskProcessor({ ...base, domains, names }), (msg) => msg);
    await consumeInBatches(names.streams.events, names.consumers.events, createEventProcessor(base), (msg) => msg);
    const resumes = createBatcher(createResumeProcessor(base), {
      maxBatch,
      concurrency: options.batchConcurrency ?? 2,
      onError: (err, items) => {
        log.error({ err, requests: items.length }, "resume batch failed");
        for (const item of items) item.reject(err);
      },
    });
    batchers.push(resumes);
    const blobCleanup = startContextBlobCleanup({
      db: store,
      blobs,
      log,
      graceMs: options.contextBlobGraceMs ?? 3_600_000,
      intervalMs: options.contextBlobSweepIntervalMs ?? 60_000,
    });
    releasers.add("context blob cleanup", () => blobCleanup.stop());
    const retention = startRetentionSweep({
      db: store,
      log,
      retentionMs: options.retentionDays !== undefined ? Math.round(options.retentionDays * 86_400_000) : periodMs(options.retention ?? DEFAULT_RETENTION),
      intervalMs: options.retentionSweepIntervalMs ?? 60_000,
    });
    releasers.add("retention sweep", () => retention.stop());
    const waitTimer = startWaitTimer({
      ...base,
      intervalMs: options.waitTimerIntervalMs ?? 1000,
      catchUp: { run: catchUp, graceMs: options.eventCatchUpGraceMs ?? DEFAULT_CATCH_UP_GRACE_MS },
    });
    releasers.add("wait timer", () => waitTimer.stop());
    const sweep = startDeadlineSweep({
      ...base,
      queueSources: queueReads,
      names,
      graceMs: options.taskDeadlineGraceMs ?? 60_000,
      intervalMs: options.deadlineSweepIntervalMs ?? 5_000,
      served: routing.serves,
    });
    releasers.add("deadline sweep", () => sweep.stop());
    const startBatch = createIntakeProcessor({ ...base, names, defaultRegion: options.region ?? "us-east-1" });
    const { batcher: intake, loop: intakeLoop } = await consumeInBatches<IntakeItem>(names.streams.flows, names.consumers.intake, startBatch, (msg) => ({
      kind: "stream",
      msg,
    }));
    // Backpressure: while the task queue is nearly full, starts wait in FM_FLOWS (or are refused, on request/reply).
    const queue = watchTaskQueue({ jsm, stream: names.streams.tasks, limit: taskQueueLimit, intervalMs: 1000, log });
    queue.onChange((overloaded) => void (overloaded ? intakeLoop.pause() : intakeLoop.resume()));
    releasers.add("task queue gauge", () => queue.stop());
    releasers.add("consumers", async () => {
      await Promise.all(loops.map((l) => l.stop()));
      await Promise.all(batchers.map((b) => b.idle()));
    });

    subflows = subflowStarter({ startEnv: { ...base, defaultRegion: options.region ?? "us-east-1" }, relay, log, conclude: (results) => conclude!(results) });
    const running = watchRunningSteps(nc, names.subjects);
    releasers.add("running steps", () => running.stop());
    // Schedules: starts on a timer, through the same intake as any start (startExecutions), keyed per tick.
    const schedules = scheduleApi(store, async (flowId) => (await registry.latest([flowId])).has(flowId));
    const startEnv = { ...base, defaultRegion: options.region ?? "us-east-1" };
    const ticker = startScheduleTicker({
      db: store,
      log: log.child({ component: "schedules" }),
      intervalMs: options.scheduleTickMs ?? 250,
      start: async ({ flowId, startKey, input, tenantId, scheduleId }) => {
        const { outcomes, committed } = await startExecutions(startEnv, [
          { flowId, startKey, subject: `schedule ${scheduleId}`, start: { input, ...(tenantId ? { tenantId } : {}), labels: { schedule: scheduleId } } },
        ]);
        relay.afterCommit(committed);
        return outcomes[0]!;
      },
    });
    releasers.add("schedule ticker", () => ticker.stop());

    const api = await startApiService({
      nc,
      names,
      log,
      maxMessageBytes,
      version: ENGINE_VERSION,
      handlers: {
        putFlow: async (body) => {
          const reply = await registry.put(body);
          const { definition } = await registry.get(reply.flowId, reply.version);
          await schedules.syncFlow(definition);
          const warnings = unservedHandlerWarnings(definition, (handler) => routing.regionsServing(handler));
          return warnings.length > 0 ? { ...reply, warnings } : reply;
        },
        listFlows: async (req) => ({ flows: await registry.list(req.flowId) }),
        putSchedule: (req) => schedules.put(req),
        getSchedule: (req) => schedules.get(req.scheduleId),
        listSchedules: (req) => schedules.list(req.flowId),
        deleteSchedule: (req) => schedules.delete(req.scheduleId),
        pauseSchedule: (req) => schedules.pause(req.scheduleId),
        resumeSchedule: (req) => schedules.resume(req.scheduleId),
        start: (msg: ServiceMsg, flowId: string) => {
          if (!queue.overloaded) return intake.push({ kind: "api", msg, flowId });
          respond(msg, new FmError("OVERLOADED", `the ${names.streams.tasks} queue is nearly full (limit ${taskQueueLimit} tasks); try again when workers have drained it`));
        },
        getExecution: async ({ executionId }) => {
          const exec = await getExecution(store, executionId);
          if (!exec) throw new FmError("EXECUTION_NOT_FOUND", `no execution ${executionId}`);
          const view = executionView(exec, await registry.get(exec.flowId, exec.flowVersion), await attemptsOf(store, executionId), running.attemptStarted);
          return sendableView(view, nc.info?.max_payload ?? DEFAULT_MAX_PAYLOAD);
        },
        listExecutions: async (req) => {
          const page = await listExecutions(store, req);
          return { executions: page.executions.map(executionSummary), ...(page.nextCursor ? { nextCursor: page.nextCursor } : {}) };
        },
        cancelExecution: async ({ executionId }) => {
          const committed = await cancelExecution({ db: base.db, subjects: names.subjects }, executionId);
          relay.afterCommit(committed);
          return committed.value;
        },
        resume: ({ resumeToken, payload, tenantId }) =>
          new Promise((resolve, reject) => resumes.push({ token: resumeToken, payload, tenantId, resolve, reject })),
        usage: (req) => usageOf(store, req),
        listDeadTasks: async (req) => ({ deadTasks: await listDeadTasks(store, req) }),
        getTask: (req) => lookUpTask({ db: store, registry, names, offload: contextOffload }, req),
        lanes: async () => ({ circuits: breakers.list(), tenants: await listTenantLanes(store), rates: rates.list(), paused: await listPausedLanes(store) }),
        putSecret: (req) => storeSecret(store, vault, req),
        listSecrets: ({ tenantId }) => listSecrets(store, vault, tenantId),
        secretsPublicKey: async () => secretsPublicKey(vault),
        deleteSecret: ({ tenantId, key }) => forgetSecret(store, vault, tenantId, key),
        rotateSecrets: ({ limit }) => rotateSecrets(store, vault, limit),
        ...operatorHandlers({ base, db: store, jsm, queueSources: queueReads, names, pauses, relay, version: ENGINE_VERSION }),
        replayDeadTasks: async ({ ids }) => {
          const committed = await replayDeadTasks(base, ids);
          relay.afterCommit(committed);
          return committed.value;
        },
      },
    });
    releasers.add("api service", () => api.stop().then(() => undefined));
    if (options.metrics) {
      const m = options.metrics;
      const metrics = createEngineMetrics({
        db: store,
        queueSources: queueReads,
        names,
        log,
        processMetrics: m.processMetrics ?? false,
        retentionTotals: retention.totals,
        ...(m.queueRefreshMs ? { queueRefreshMs: m.queueRefreshMs } : {}),
      });
      releasers.add("metrics", () => metrics.stop());
      const listener = await serveMetrics(metrics.registry, { port: m.port, host: m.host ?? "127.0.0.1", log });
      releasers.add("metrics listener", () => listener.close());
      metricsUrl = listener.url;
    }
    // The endpoints' subscriptions reach the server before start() resolves: "started" means requests are answered.
    await nc.flush();
    log.info({ prefix: names.prefix, service: names.serviceName }, "engine started");
  });

  const close = once(async () => {
    let error: Error | undefined;
    await releasers.releaseAll((name, err) => log.error({ err, resource: name }, "release failed")).catch((err) => {
      error = toError(err);
    });
    closedSignal.resolve(error);
  });

  return {
    get db() {
      if (!db) throw new Error("engine not started");
      return db;
    },
    get regionLoad() {
      return regionLoad;
    },
    get metricsUrl() {
      return metricsUrl;
    },
    start,
    async drain() {
      // Stop pulling and finish the batches already taken; the relay publishes what they committed.
      await Promise.all(loops.map((l) => l.stop()));
      await Promise.all(batchers.map((b) => b.idle()));
    },
    close,
    closed: () => closedSignal.promise,
  };
}

export { respond };
