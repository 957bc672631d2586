import { z } from "zod";
import { Base64Key, DEFAULT_RETENTION, fields, JsDomain, jsonText, PoolPublicKeys, RegionDomains, ResidencyRules, RetentionPeriod, type ConfigOf } from "@flowmonkey/shared";
import { parseRateRules } from "./scheduler/rate-limits.js";

/** flowmonkey-engine's options: env, overridden by flags. */
export const engineConfigFields = {
  natsUrl: fields.natsUrl,
  natsCreds: fields.natsCreds,
  natsUser: fields.natsUser,
  natsPassword: fields.natsPassword,
  natsTlsCa: fields.natsTlsCa,
  natsTlsCert: fields.natsTlsCert,
  natsTlsKey: fields.natsTlsKey,
  prefix: fields.prefix,
  databaseUrl: fields.databaseUrl,
  dataDir: fields.dataDir,
  region: fields.region,
  heartbeatTimeoutMs: fields.heartbeatTimeoutMs,
  logLevel: fields.logLevel,
  logPretty: fields.logPretty,
  maxMessageBytes: fields.maxMessageBytes,
  expressionTimeoutMs: fields.expressionTimeoutMs,
  expressionMemoryMb: fields.expressionMemoryMb,
  expressionProcesses: fields.expressionProcesses,
  shutdownGraceMs: fields.shutdownGraceMs,
  otlpEndpoint: fields.otlpEndpoint,
  metricsPort: fields.metricsPort,
  metricsHost: fields.metricsHost,
  maxBatch: {
    schema: z.coerce.number().int().min(1).max(5000).default(500),
    env: "FM_ENGINE_MAX_BATCH",
    flag: "max-batch",
    doc: "most messages applied in one database transaction",
  },
  batchConcurrency: {
    schema: z.coerce.number().int().min(1).max(16).default(2),
    env: "FM_ENGINE_BATCH_CONCURRENCY",
    flag: "batch-concurrency",
    doc: "batches in their transaction at once, per consumer",
  },
  taskQueueLimit: {
    schema: z.coerce.number().int().min(1).max(1_000_000_000).default(1_000_000),
    env: "FM_TASK_QUEUE_LIMIT",
    flag: "task-queue-limit",
    doc: "most tasks queued in the task stream; near it (90 %) new starts are refused with OVERLOADED until it drains below 80 %",
  },
  tenantMaxInFlight: {
    schema: z.coerce.number().int().min(0).max(10_000_000).default(1000),
    env: "FM_TENANT_MAX_IN_FLIGHT",
    flag: "tenant-max-in-flight",
    doc: "default cap on one tenant's tasks in flight per region and handler (0 = none); the rest wait in the engine, in order",
  },
  rateLimits: {
    schema: z
      .string()
      .default("")
      .transform((spec, ctx) => {
        try {
          return parseRateRules(spec);
        } catch (err) {
          ctx.addIssue({ code: "custom", message: (err as Error).message });
          return z.NEVER;
        }
      }),
    env: "FM_RATE_LIMITS",
    flag: "rate-limits",
    doc: "tasks/s per lane: <region>/<handler>=<n>,… (either part may be *; each matching lane gets that rate)",
  },
  tenantRateLimit: {
    schema: z.coerce.number().min(0).max(1_000_000).default(0),
    env: "FM_TENANT_RATE_LIMIT",
    flag: "tenant-rate-limit",
    doc: "tasks/s of one tenant per lane (0 = none)",
  },
  circuitCoolDownMs: {
    schema: z.coerce.number().int().min(100).max(3600_000).default(30_000),
    env: "FM_CIRCUIT_COOLDOWN_MS",
    flag: "circuit-cooldown-ms",
    doc: "how long a lane (region + handler) whose infrastructure failures crossed the threshold holds new tasks before a probe",
  },
  circuitMinResults: {
    schema: z.coerce.number().int().min(1).max(100_000).default(20),
    env: "FM_CIRCUIT_MIN_RESULTS",
    flag: "circuit-min-results",
    doc: "results a lane needs in the last 30 s before its failure ratio can open the circuit",
  },
  circuitFailureRatio: {
    schema: z.coerce.number().gt(0).max(1).default(0.5),
    env: "FM_CIRCUIT_FAILURE_RATIO",
    flag: "circuit-failure-ratio",
    doc: "share of infrastructure failures (worker errors, timeouts, lost deliveries, UNAVAILABLE) that opens a lane's circuit",
  },
  retention: {
    schema: RetentionPeriod.default(DEFAULT_RETENTION),
    env: "FM_RETENTION",
    flag: "retention",
    doc: 'how long an ended execution (with its tasks, dead letters, wait tokens and context blobs), a rejection and an outbox dead letter are kept ("7d", "36h", "forever"); a flow\'s `retention:` overrides it for its executions; usage totals are rolled up first',
  },
  retentionDays: {
    schema: z.coerce.number().min(0).max(36_500).optional(),
    env: "FM_RETENTION_DAYS",
    flag: "retention-days",
    doc: "the retention in days (older spelling of FM_RETENTION; wins when set, 0 keeps everything)",
  },
  taskDeadlineGraceMs: {
    schema: z.coerce.number().int().min(0).max(24 * 3600_000).default(60_000),
    env: "FM_TASK_DEADLINE_GRACE_MS",
    flag: "task-deadline-grace-ms",
    doc: "how long past an attempt's timeout the engine waits for its result before timing it out itself",
  },
  deadlineSweepIntervalMs: {
    schema: z.coerce.number().int().min(50).max(600_000).default(5_000),
    env: "FM_DEADLINE_SWEEP_MS",
    flag: "deadline-sweep-ms",
    doc: "how often the engine looks for attempts past their deadline",
  },
  vaultKey: {
    schema: Base64Key.optional(),
    env: "FM_VAULT_KEY",
    doc: "32-byte key (base64) that encrypts the vault's secrets at rest; unset: no vault (secrets.put and steps with vault: fail with VAULT_NOT_CONFIGURED)",
  },
  vaultPreviousKeys: {
    schema: z
      .string()
      .transform((text, ctx) =>
        text
          .split(",")
          .map((part) => part.trim())
          .filter((part) => part.length > 0)
          .flatMap((part, i) => {
            const parsed = Base64Key.safeParse(part);
            if (parsed.success) return [parsed.data];
            // Never the value: it is a key.
            ctx.addIssue({ code: "custom", message: `key ${i + 1}: must be 32 bytes in base64` });
            return [];
          }),
      )
      .optional(),
    env: "FM_VAULT_PREVIOUS_KEYS",
    doc: "vault keys (base64, comma-separated) secrets may still be encrypted with after FM_VAULT_KEY changed: read, never written; `flowmonkey secrets rotate` re-encrypts every secret under FM_VAULT_KEY, then drop them",
  },
  vaultPoolKeys: {
    schema: jsonText(PoolPublicKeys).optional(),
    env: "FM_VAULT_POOL_KEYS",
    doc: 'worker pools\' public keys (base64, from `flowmonkey secrets keygen`) as JSON: {"<region>/<handler>": "…", "<region>": "…"}; a region key serves its pools without one of their own',
  },
  checkpointTtlMs: {
    schema: z.coerce.number().int().min(60_000).max(365 * 24 * 3600_000).default(7 * 24 * 3600_000),
    env: "FM_CHECKPOINT_TTL_MS",
    flag: "checkpoint-ttl-ms",
    doc: "how long a step's checkpoint is kept after its last save (a pause longer than this loses its state); default 7 days",
  },
  contextInlineMaxBytes: {
    // Above 8 MiB a task could not be published anyway (NATS max_payload tops out at 64 MiB and is 1 MiB by default).
    schema: z.coerce.number().int().min(1024).max(8 * 1024 * 1024).default(256 * 1024),
    env: "FM_CONTEXT_INLINE_MAX_BYTES",
    flag: "context-inline-max-bytes",
    doc: "a task whose context's JSON is larger than this carries a reference to it, gzip'd in the blob bucket, instead of the context",
  },
  replicas: {
    schema: z.coerce.number().int().min(1).max(5).default(1),
    env: "FM_REPLICAS",
    flag: "replicas",
    doc: "replicas of the hub's streams and buckets: 3 on a clustered hub (nats-config/hub-cluster-*.conf), so losing one node loses nothing",
  },
  hubDomain: {
    schema: JsDomain.default("hub"),
    env: "FM_HUB_DOMAIN",
    flag: "hub-domain",
    doc: "JetStream domain of the hub the engine connects to (used with FM_REGION_DOMAINS)",
  },
  regionDomains: {
    schema: jsonText(RegionDomains).optional(),
    env: "FM_REGION_DOMAINS",
    doc: 'where each region\'s task queue lives, as JSON {"us-east-1":"hub","eu-west-1":"eu-west-1"}: regions on leaf nodes get their queue and results buffer in their own domain; unset = one server holds every region',
  },
  residency: {
    schema: jsonText(ResidencyRules).optional(),
    env: "FM_RESIDENCY",
    doc: 'data-residency rules, as JSON {"gdpr":["eu-west-1"]}: a step with `residency: gdpr` runs only in those regions, in that order of preference',
  },
  routingBusyMargin: {
    schema: z.coerce.number().int().min(0).max(10_000_000).default(50),
    env: "FM_ROUTING_BUSY_MARGIN",
    flag: "routing-busy-margin",
    doc: "queued tasks by which an unpinned step's preferred region may exceed the least busy allowed region before its task moves there",
  },
  regionLoadIntervalMs: {
    schema: z.coerce.number().int().min(100).max(600_000).default(2000),
    env: "FM_REGION_LOAD_INTERVAL_MS",
    flag: "region-load-interval-ms",
    doc: "how often the engine reads every region's task pool backlogs for least-busy routing",
  },
  dbPoolSize: {
    schema: z.coerce.number().int().min(1).max(200).default(8),
    env: "FM_DB_POOL_SIZE",
    flag: "db-pool-size",
    doc: "PostgreSQL connections (ignored with embedded PGlite)",
  },
} as const;

export type EngineConfig = ConfigOf<typeof engineConfigFields>;
