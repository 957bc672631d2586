import { z } from "zod";
import { Failure, JsonObject, ResumeToken, Timestamp } from "./messages/common.js";
import { ExecutionStatus, StepStatus } from "./messages/execution-event.js";
import { WaitRequest } from "./messages/task-result.js";
import { Task } from "./messages/task.js";
import { Region, Token } from "./tokens.js";
import { SecretKeyName, VaultTenant } from "../vault/keys.js";

/** Request and reply shapes of the `fm.api.*` endpoints (subjects are in subjects.ts). */

export const FlowPutReply = z.object({
  flowId: Token,
  version: z.number().int().positive(),
  created: z.boolean(),
  /** Registered, but something will keep it from running as written (a handler no live worker serves). */
  warnings: z.array(z.string()).optional(),
});
export type FlowPutReply = z.infer<typeof FlowPutReply>;

export const FlowSummary = z.object({
  flowId: Token,
  version: z.number().int().positive(),
  label: z.string().optional(),
  name: z.string().optional(),
  /** The flow file's `example:` input, for start forms. */
  example: z.unknown().optional(),
  steps: z.number().int(),
  createdAt: Timestamp,
});
export type FlowSummary = z.infer<typeof FlowSummary>;
export const FlowListRequest = z.object({ flowId: Token.optional() }).strict();
export const FlowListReply = z.object({ flows: z.array(FlowSummary) });
export type FlowListReply = z.infer<typeof FlowListReply>;

export const StartReply = z.object({ executionId: Token, created: z.boolean() });
export type StartReply = z.infer<typeof StartReply>;

export const ExecutionRef = z.object({ executionId: Token }).strict();
export type ExecutionRef = z.infer<typeof ExecutionRef>;

/** One attempt of a step: what the engine dispatched and what came back for it. */
export const AttemptView = z.object({
  attempt: z.number().int().positive(),
  /** dispatched (no outcome yet, or its step was cancelled), completed, failed, waiting. */
  status: z.string(),
  region: z.string(),
  /** When it was (or is due to be) published; later than the step's start for a retry after its backoff. */
  dispatchedAt: Timestamp,
  workerId: z.string().optional(),
  startedAt: Timestamp.optional(),
  completedAt: Timestamp.optional(),
  error: Failure.optional(),
});
export type AttemptView = z.infer<typeof AttemptView>;

/**
 * A step as views show it: its stored status, except that a dispatched step whose worker has
 * started it (it announced so on its progress subject) shows `running`.
 */
export const StepViewStatus = z.enum([...StepStatus.options, "running"]);
export type StepViewStatus = z.infer<typeof StepViewStatus>;

export const StepView = z.object({
  stepId: Token,
  handler: Token,
  status: StepViewStatus,
  attempts: z.number().int().nonnegative(),
  output: z.unknown().optional(),
  error: Failure.optional(),
  startedAt: Timestamp.optional(),
  completedAt: Timestamp.optional(),
  /** While waiting: what for, and since when. */
  wait: WaitRequest.extend({ since: Timestamp }).optional(),
  /** Every attempt, oldest first (executions.get only). */
  history: z.array(AttemptView).optional(),
  /** A sub-flow step: the flow it runs, and the child execution of its current attempt. */
  flow: Token.optional(),
  childExecutionId: Token.optional(),
  /** A map step: its items, and how many are done (completed or failed), failed and running. */
  map: z
    .object({ total: z.number().int().nonnegative(), done: z.number().int().nonnegative(), failed: z.number().int().nonnegative(), running: z.number().int().nonnegative() })
    .optional(),
});
export type StepView = z.infer<typeof StepView>;

export const ExecutionView = z.object({
  id: Token,
  flowId: Token,
  flowVersion: z.number().int().positive(),
  status: ExecutionStatus,
  input: z.unknown(),
  context: JsonObject,
  /** Set when the context was too large to send in this reply (`context` is then `{}`): its JSON size. */
  contextOmitted: z.object({ bytes: z.number().int().nonnegative() }).optional(),
  output: z.unknown().optional(),
  error: Failure.optional(),
  tenantId: z.string().optional(),
  region: z.string(),
  labels: z.record(z.string(), z.string()).optional(),
  createdAt: Timestamp,
  updatedAt: Timestamp,
  completedAt: Timestamp.optional(),
  /** A sub-flow's execution: the execution and step that started it. */
  parentExecutionId: Token.optional(),
  parentStepId: Token.optional(),
  steps: z.array(StepView),
});
export type ExecutionView = z.infer<typeof ExecutionView>;

export const ExecutionListRequest = z
  .object({
    flowId: Token.optional(),
    status: ExecutionStatus.optional(),
    tenantId: z.string().optional(),
    limit: z.number().int().min(1).max(500).default(50),
    /** Opaque cursor from the previous page's `nextCursor`. */
    cursor: z.string().max(256).optional(),
  })
  .strict();
export type ExecutionListRequest = z.input<typeof ExecutionListRequest>;

export const ExecutionSummary = ExecutionView.omit({ steps: true, input: true, context: true, output: true });
export type ExecutionSummary = z.infer<typeof ExecutionSummary>;
export const ExecutionListReply = z.object({ executions: z.array(ExecutionSummary), nextCursor: z.string().optional() });
export type ExecutionListReply = z.infer<typeof ExecutionListReply>;

export const CancelReply = z.object({ executionId: Token, status: ExecutionStatus });
export type CancelReply = z.infer<typeof CancelReply>;

/** One dead-lettered task attempt as `dlq.list` shows it; `id` is `<taskId>:<attempt>`. */
export const DeadTaskSummary = z.object({
  id: z.string(),
  executionId: Token,
  flowId: Token,
  stepId: Token,
  attempt: z.number().int().positive(),
  region: z.string(),
  handler: Token,
  reason: z.enum(["deliveries_exhausted", "attempts_exhausted", "undeliverable"]),
  lastError: Failure.optional(),
  deliveries: z.number().int().nonnegative(),
  at: Timestamp,
  /** When it was replayed, if it was (a replayed task is listed until it ages out). */
  replayedAt: Timestamp.optional(),
});
export type DeadTaskSummary = z.infer<typeof DeadTaskSummary>;
export const DlqListRequest = z
  .object({
    region: z.string().max(64).optional(),
    handler: Token.optional(),
    /** Include tasks already replayed (default: only those still waiting for a decision). */
    includeReplayed: z.boolean().default(false),
    limit: z.number().int().min(1).max(500).default(100),
  })
  .strict();
export type DlqListRequest = z.input<typeof DlqListRequest>;
export const DlqListReply = z.object({ deadTasks: z.array(DeadTaskSummary) });
export type DlqListReply = z.infer<typeof DlqListReply>;
export const DlqReplayRequest = z.object({ ids: z.array(z.string().min(1).max(512)).min(1).max(500) }).strict();
export type DlqReplayRequest = z.infer<typeof DlqReplayRequest>;
export const DlqReplayReply = z.object({
  /** Ids whose step was dispatched again as a new attempt (its execution running again). */
  replayed: z.array(z.string()),
  /** Ids that were not replayed, each with why (unknown id, already replayed, step moved on). */
  refused: z.array(z.object({ id: z.string(), code: z.string(), message: z.string() })),
});
export type DlqReplayReply = z.infer<typeof DlqReplayReply>;

export const LanesRequest = z.object({}).strict();
/** `fm.api.lanes`: lanes (`<region>/<handler>`) that are not plainly healthy, as the answering engine sees them. */
export const LanesReply = z.object({
  /** Circuits of this engine replica that are open, half-open, or counting failures. */
  circuits: z.array(
    z.object({
      lane: z.string(),
      state: z.enum(["closed", "open", "half-open"]),
      results: z.number().int(),
      failures: z.number().int(),
      openedAt: Timestamp.optional(),
      openUntil: Timestamp.optional(),
    }),
  ),
  /** Tenants' lanes with tasks in flight or waiting for their turn. */
  tenants: z.array(z.object({ tenantId: z.string(), lane: z.string(), inFlight: z.number().int(), queued: z.number().int(), maxInFlight: z.number().int() })),
  /** Tasks/s limits of this replica: configured rules, and keys (`<region>/<handler>`, `<tenant>@<region>/<handler>`) in use. */
  rates: z.array(z.object({ key: z.string(), perSecond: z.number(), heldUntil: Timestamp.optional() })).default([]),
  /** Lanes an operator paused (`queues pause`): their new tasks wait in the engine. */
  paused: z.array(z.object({ lane: z.string(), reason: z.string().optional(), pausedAt: Timestamp, held: z.number().int() })).default([]),
});
export type LanesReply = z.infer<typeof LanesReply>;

export const ResumeRequest = z
  .object({
    resumeToken: ResumeToken,
    payload: z.unknown().optional(),
    /** Resume only if the waiting step's execution belongs to this tenant (the gateway sets it for a tenant's token). */
    tenantId: z.string().min(1).max(128).optional(),
  })
  .strict();
export type ResumeRequest = z.infer<typeof ResumeRequest>;
/** The resumed step is dispatched again (status `running`); its run receives the payload as `ctx.resume.payload`. */
export const ResumeReply = z.object({ executionId: Token, stepId: Token, status: ExecutionStatus });
export type ResumeReply = z.infer<typeof ResumeReply>;

/** Largest secret value `secrets.put` takes (UTF-8 bytes): API keys and certificates, not files. */
export const MAX_SECRET_BYTES = 64 * 1024;

/** A secret's value in clear: only ever inside a sealed box on the wire (SealedSecret). */
export const SecretValue = z
  .string()
  .min(1)
  .refine((v) => Buffer.byteLength(v, "utf8") <= MAX_SECRET_BYTES, `must be at most ${MAX_SECRET_BYTES} bytes`);

/**
 * What a client gives to store (or replace) one secret of a tenant: the CLI's arguments, the
 * body of `PUT /v1/secrets/:key` (with the key in the path). The client library seals it
 * (SealedSecret) before it crosses NATS; the value in clear never travels there.
 */
export const SecretPutInput = z.object({ tenantId: VaultTenant, key: SecretKeyName, value: SecretValue }).strict();
export type SecretPutInput = z.input<typeof SecretPutInput>;

/**
 * What a sealed secret holds: the value with the tenant and key it is for, so that a sealed
 * value captured from one request cannot be stored under another key or tenant.
 */
export const SealedSecret = z.object({ tenantId: z.string(), key: z.string(), value: SecretValue }).strict();

/** base64 of a sealed box of the largest SealedSecret (JSON escapes may grow a value up to 6×). */
const MAX_SEALED_SECRET_CHARS = Math.ceil((MAX_SECRET_BYTES * 6 + 2048) / 3) * 4;

/**
 * `fm.api.secrets.put`: stores (or replaces) one secret of a tenant, encrypted at rest.
 * `sealedValue` is an X25519 sealed box (base64) of the SealedSecret JSON, sealed for the
 * engine's vault public key (`fm.api.secrets.publicKey`): the value is never in clear on the
 * wire, and no reply, list or log ever carries it back.
 */
export const SecretPutRequest = z
  .object({
    tenantId: VaultTenant,
    key: SecretKeyName,
    sealedValue: z.string().min(1).max(MAX_SEALED_SECRET_CHARS),
  })
  .strict();
export type SecretPutRequest = z.input<typeof SecretPutRequest>;

/** `fm.api.secrets.delete`: forgets one secret of a tenant (a step that lists it then fails with VAULT_KEY_NOT_FOUND). */
export const SecretDeleteRequest = z.object({ tenantId: VaultTenant, key: SecretKeyName }).strict();
export type SecretDeleteRequest = z.input<typeof SecretDeleteRequest>;
export const SecretDeleteReply = z.object({ tenantId: z.string(), key: z.string(), deleted: z.boolean() });
export type SecretDeleteReply = z.infer<typeof SecretDeleteReply>;

/**
 * `fm.api.secrets.rotate`: re-encrypts up to `limit` secrets still under a previous vault key
 * (FM_VAULT_PREVIOUS_KEYS) with the current one (FM_VAULT_KEY), in one transaction. Call again
 * until `remaining` is 0 (`flowmonkey secrets rotate` does); then the previous key may go.
 */
export const SecretRotateRequest = z.object({ limit: z.number().int().min(1).max(1000).default(200) }).strict();
export type SecretRotateRequest = z.input<typeof SecretRotateRequest>;
export const SecretRotateReply = z.object({
  keyId: z.string(),
  rotated: z.number().int().nonnegative(),
  /** Rows still under another key after this call (those below included). */
  remaining: z.number().int().nonnegative(),
  /** Rows under a key this engine does not have (neither current nor previous): left as they are. */
  unreadable: z.array(z.object({ tenantId: z.string(), key: z.string(), keyId: z.string() })),
});
export type SecretRotateReply = z.infer<typeof SecretRotateReply>;

/** `fm.api.secrets.publicKey`: the key a client seals secrets for, and the vault key it belongs to. */
export const SecretPublicKeyRequest = z.object({}).strict();
export const SecretPublicKeyReply = z.object({ publicKey: z.string(), keyId: z.string() });
export type SecretPublicKeyReply = z.infer<typeof SecretPublicKeyReply>;
export const SecretPutReply = z.object({ tenantId: z.string(), key: z.string(), created: z.boolean(), updatedAt: Timestamp });
export type SecretPutReply = z.infer<typeof SecretPutReply>;

/** `fm.api.secrets.list`: a tenant's secret names and dates; never their values. */
export const SecretListRequest = z.object({ tenantId: VaultTenant }).strict();
export const SecretListReply = z.object({
  tenantId: z.string(),
  secrets: z.array(z.object({ key: z.string(), createdAt: Timestamp, updatedAt: Timestamp })),
});
export type SecretListReply = z.infer<typeof SecretListReply>;

export const ErrorReplySchema = z.object({
  error: z.object({ code: z.string(), message: z.string(), details: z.unknown().optional() }),
});

export const UsageRequest = z
  .object({
    tenantId: z.string().min(1).max(128).optional(),
    /** Attempts that ended at or after this time (default: 30 days ago). */
    from: Timestamp.optional(),
    /** ...and before this one (default: now). */
    to: Timestamp.optional(),
  })
  .strict();
export type UsageRequest = z.input<typeof UsageRequest>;

const UsageTotals = z.object({
  /** Task attempts that ended in the period (completed, failed or parked on a wait). */
  tasks: z.number().int().nonnegative(),
  /** The handlers' own run time, as their workers measured it. */
  activeMs: z.number().int().nonnegative(),
  /** Time steps spent parked after those attempts (waits and pauses): not compute. */
  pausedMs: z.number().int().nonnegative(),
});

/** `fm.api.usage`: per tenant (absent: executions without one), by pool tier. */
export const UsageReply = z.object({
  from: Timestamp,
  to: Timestamp,
  tenants: z.array(
    UsageTotals.extend({
      tenantId: z.string().optional(),
      /** Executions that had an attempt end in the period. */
      executions: z.number().int().nonnegative(),
      byTier: z.record(z.string(), UsageTotals),
    }),
  ),
});
export type UsageReply = z.infer<typeof UsageReply>;

/** `fm.api.health`: the answering engine ran `SELECT 1` on its store. */
export const HealthRequest = z.object({}).strict();
export const HealthReply = z.object({
  status: z.literal("ok"),
  store: z.enum(["postgres", "pglite"]),
  /** Round trip of the store check. */
  storeLatencyMs: z.number().nonnegative(),
  version: z.string(),
});
export type HealthReply = z.infer<typeof HealthReply>;

/**
 * One pool consumer (`<region>/<handler>`, one per priority) of the task stream. A handler's
 * capability-qualified pools (`<handler>~<cap>…`, for steps that `require` capabilities) are
 * queues of their own: one row each, with their `capabilities`.
 */
export const QueueView = z.object({
  region: z.string(),
  handler: z.string(),
  /** The pool's capabilities (sorted); [] for the handler's plain pool. */
  capabilities: z.array(z.string()).default([]),
  priority: z.enum(["high", "normal", "low"]),
  /** Tasks waiting to be delivered. */
  pending: z.number().int().nonnegative(),
  /** Tasks delivered and not yet acknowledged. */
  ackPending: z.number().int().nonnegative(),
  /** Tasks delivered more than once and not yet acknowledged. */
  redelivered: z.number().int().nonnegative(),
  /** Pull requests waiting at the server (idle workers). */
  waiting: z.number().int().nonnegative(),
  /** An operator paused this lane (`<region>/<handler>`, every priority and every pool of the handler): its new tasks are parked in the engine. */
  paused: z.boolean().default(false),
});
export type QueueView = z.infer<typeof QueueView>;
/** `fm.api.queues`: the pools of every domain's task stream (the hub's and each leaf region's), read from the servers on request. */
export const QueuesRequest = z.object({ region: z.string().max(64).optional(), handler: Token.optional() }).strict();
export type QueuesRequest = z.input<typeof QueuesRequest>;
export const PausedLane = z.object({ lane: z.string(), reason: z.string().optional(), pausedAt: Timestamp, held: z.number().int().nonnegative() });
/**
 * A region of the engine's topology (FM_REGION_DOMAINS) and whether the JetStream domain that
 * holds its task queue answered this read. An unreachable region has no rows in `queues`.
 */
export const QueueRegion = z.object({ region: z.string(), domain: z.string(), reachable: z.boolean(), error: z.string().optional() });
export type QueueRegion = z.infer<typeof QueueRegion>;
export const QueuesReply = z.object({
  queues: z.array(QueueView),
  paused: z.array(PausedLane).default([]),
  /** Every region of the topology, reachable or not; [] on a single server (no topology). */
  regions: z.array(QueueRegion).default([]),
});
export type QueuesReply = z.infer<typeof QueuesReply>;

/** A worker's entry in KV `fm_workers` (written by the worker, expired by the bucket's TTL). */
export const WorkerEntry = z.object({
  workerId: z.string(),
  region: z.string(),
  handlers: z.array(z.string()),
  /** What the worker offers (`--capabilities gpu`); steps that `require` them are routed by it. Older workers wrote none. */
  capabilities: z.array(z.string()).default([]),
  /**
   * The worker pulls the capability-qualified pool of exactly its capabilities (`<handler>~<caps>`).
   * Workers before capability pools wrote none: routing sends tasks that only they can take to
   * the plain pool, as it did then.
   */
  capabilityPools: z.boolean().default(false),
  concurrency: z.number().int().positive(),
  inFlight: z.number().int().nonnegative(),
  version: z.string(),
  host: z.string(),
  startedAt: Timestamp,
});
export type WorkerEntry = z.infer<typeof WorkerEntry>;
export const WorkersReply = z.object({ workers: z.array(WorkerEntry.extend({ updatedAt: Timestamp })) });
export type WorkersReply = z.infer<typeof WorkersReply>;

/**
 * `fm.api.queues.pause` / `.resume`: a paused lane's tasks are parked by the engine (in
 * Postgres, every replica agrees) instead of published; tasks already in the queue still run.
 * Resuming publishes the parked ones. Pausing twice, or resuming a lane that is not paused, is fine.
 */
export const QueuePauseRequest = z.object({ region: Region, handler: Token, reason: z.string().max(500).optional() }).strict();
export type QueuePauseRequest = z.input<typeof QueuePauseRequest>;
export const QueueResumeRequest = z.object({ region: Region, handler: Token }).strict();
export type QueueResumeRequest = z.input<typeof QueueResumeRequest>;
export const QueuePauseReply = z.object({
  lane: z.string(),
  paused: z.boolean(),
  /** resume only: whether the lane was paused, and how many parked tasks were released. */
  wasPaused: z.boolean().optional(),
  released: z.number().int().nonnegative().optional(),
});
export type QueuePauseReply = z.infer<typeof QueuePauseReply>;

/**
 * `fm.api.dlq.purge`: deletes dead letters still waiting for a decision (with
 * `includeReplayed`, replayed ones too), of one region/handler or all. The FM_DLQ stream copies
 * are purged too when the request names both region and handler, or neither.
 */
export const DlqPurgeRequest = z
  .object({ region: z.string().max(64).optional(), handler: Token.optional(), includeReplayed: z.boolean().default(false) })
  .strict();
export type DlqPurgeRequest = z.input<typeof DlqPurgeRequest>;
export const DlqPurgeReply = z.object({ purged: z.number().int().nonnegative(), streamPurged: z.number().int().nonnegative() });
export type DlqPurgeReply = z.infer<typeof DlqPurgeReply>;

/** `fm.api.executions.retryStep`: a failed step runs again as a new attempt; a failed execution runs again. */
export const RetryStepRequest = z.object({ executionId: Token, stepId: Token }).strict();
export type RetryStepRequest = z.infer<typeof RetryStepRequest>;
export const RetryStepReply = z.object({ executionId: Token, stepId: Token, attempt: z.number().int().positive(), status: ExecutionStatus });
export type RetryStepReply = z.infer<typeof RetryStepReply>;

/** A task id, `<executionId>/<stepId>`, as Task.taskId spells it. */
export const TaskIdRef = z.string().regex(/^[^/\s]+\/[^/\s]+$/, "a task id is <executionId>/<stepId>");

/** `fm.api.tasks.get`: one attempt of a step, as it was dispatched (default: its latest attempt), for a local replay. */
export const TaskGetRequest = z.object({ taskId: TaskIdRef, attempt: z.number().int().positive().optional() }).strict();
export type TaskGetRequest = z.infer<typeof TaskGetRequest>;
export const TaskGetReply = z.object({
  task: Task,
  /** `dead-letter`: the task exactly as it was queued; `rebuilt`: rebuilt from the execution row and its flow version. */
  source: z.enum(["dead-letter", "rebuilt"]),
  /** The vault entries that were removed: sealed secrets open only on the pool's workers, never on a laptop. */
  vaultRemoved: z.array(z.string()),
});
export type TaskGetReply = z.infer<typeof TaskGetReply>;
