import { z } from "zod";
import { Prefix, Region } from "../protocol/tokens.js";

/** One configuration option: its schema (defaults live here, once), its env var and flag. */
export interface ConfigField<S extends z.ZodType = z.ZodType> {
  schema: S;
  env?: string;
  flag?: string;
  /** Boolean flags take no value (`--json`). */
  boolean?: boolean;
  doc: string;
}

const field = <S extends z.ZodType>(f: ConfigField<S>): ConfigField<S> => f;

const durationMs = (min: number) => z.coerce.number().int().min(min);

/** The options every binary shares; each binary's config picks from these and adds its own. */
export const fields = {
  natsUrl: field({
    schema: z.string().min(1).default("nats://127.0.0.1:4222"),
    env: "NATS_URL",
    flag: "nats-url",
    doc: "NATS server URL(s), comma-separated",
  }),
  natsCreds: field({ schema: z.string().min(1).optional(), env: "NATS_CREDS", flag: "nats-creds", doc: "path to a NATS .creds file" }),
  natsUser: field({ schema: z.string().min(1).optional(), env: "NATS_USER", flag: "nats-user", doc: "NATS user, for a server with passwords (the shipped multi-region configs have none: a process logs in with its role's certificate, NATS_TLS_CERT)" }),
  natsPassword: field({ schema: z.string().min(1).optional(), env: "NATS_PASSWORD", doc: "password of NATS_USER" }),
  natsTlsCa: field({ schema: z.string().min(1).optional(), env: "NATS_TLS_CA", flag: "nats-tls-ca", doc: "PEM file of the CA that signed the NATS servers' certificates (turns TLS on; scripts/certs makes one)" }),
  natsTlsCert: field({ schema: z.string().min(1).optional(), env: "NATS_TLS_CERT", flag: "nats-tls-cert", doc: "PEM client certificate, with NATS_TLS_KEY: under the shipped hub and leaf configs, the login (the role it names is the user: engine, gateway, worker-<region>)" }),
  natsTlsKey: field({ schema: z.string().min(1).optional(), env: "NATS_TLS_KEY", flag: "nats-tls-key", doc: "PEM private key of NATS_TLS_CERT" }),
  prefix: field({
    schema: Prefix.default("fm"),
    env: "FM_PREFIX",
    flag: "prefix",
    doc: "subject prefix; streams and buckets are named after it",
  }),
  databaseUrl: field({
    schema: z.string().min(1).optional(),
    env: "DATABASE_URL",
    flag: "database-url",
    doc: "PostgreSQL URL; unset = embedded PGlite under FM_DATA_DIR",
  }),
  dataDir: field({ schema: z.string().min(1).default(".flowmonkey"), env: "FM_DATA_DIR", flag: "data-dir", doc: "local data directory" }),
  region: field({ schema: Region.default("us-east-1"), env: "FM_REGION", flag: "region", doc: "region of this process" }),
  heartbeatTimeoutMs: field({
    schema: durationMs(1000).default(60_000),
    env: "FM_HEARTBEAT_TIMEOUT_MS",
    flag: "heartbeat-timeout-ms",
    doc: "how long a task may go without an in-progress ack before it is redelivered (the task consumers' ack_wait)",
  }),
  httpPort: field({
    schema: z.coerce.number().int().min(0).max(65535).default(8080),
    env: "FM_HTTP_PORT",
    flag: "port",
    doc: "gateway HTTP port (0 = any free port)",
  }),
  httpHost: field({ schema: z.string().min(1).default("127.0.0.1"), env: "FM_HTTP_HOST", flag: "host", doc: "gateway HTTP bind address" }),
  logLevel: field({
    schema: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
    env: "LOG_LEVEL",
    flag: "log-level",
    doc: "pino log level",
  }),
  logPretty: field({
    schema: z.stringbool().default(false),
    env: "FM_LOG_PRETTY",
    doc: "human-readable logs (flowmonkey dev turns this on)",
  }),
  expressionTimeoutMs: field({
    schema: z.coerce.number().int().min(10).max(600_000).default(1000),
    env: "FM_EXPRESSION_TIMEOUT_MS",
    flag: "expression-timeout-ms",
    doc: "time limit of one JSONata evaluation (a step's {% %} input, a transform task); past it the evaluator process is killed and the step fails with EXPRESSION_ERROR",
  }),
  expressionMemoryMb: field({
    schema: z.coerce.number().int().min(16).max(16_384).default(128),
    env: "FM_EXPRESSION_MEMORY_MB",
    flag: "expression-memory-mb",
    doc: "V8 heap limit of each JSONata evaluator process; an evaluation that outgrows it fails with EXPRESSION_ERROR",
  }),
  expressionProcesses: field({
    schema: z.coerce.number().int().min(1).max(64).default(2),
    env: "FM_EXPRESSION_PROCESSES",
    flag: "expression-processes",
    doc: "JSONata evaluator processes kept warm (plain path lookups are evaluated in-process)",
  }),
  maxMessageBytes: field({
    schema: z.coerce.number().int().min(1024).default(1024 * 1024),
    env: "FM_MAX_MESSAGE_BYTES",
    doc: "largest JSON body accepted on any subject or endpoint",
  }),
  otlpEndpoint: field({
    schema: z.url().optional(),
    env: "OTEL_EXPORTER_OTLP_ENDPOINT",
    flag: "otlp-endpoint",
    doc: "OpenTelemetry OTLP/HTTP endpoint (e.g. http://localhost:4318); spans of starts, dispatches, task runs and result applies go there. Unset: no tracing",
  }),
  metricsPort: field({
    schema: z.coerce.number().int().min(0).max(65535).optional(),
    env: "FM_METRICS_PORT",
    flag: "metrics-port",
    doc: "serve Prometheus metrics on this port at /metrics (0 = any free port); unset = no metrics listener",
  }),
  metricsHost: field({
    schema: z.string().min(1).default("127.0.0.1"),
    env: "FM_METRICS_HOST",
    flag: "metrics-host",
    doc: "bind address of the metrics listener (loopback unless you mean to expose it)",
  }),
  shutdownGraceMs: field({
    schema: durationMs(0).default(30_000),
    env: "FM_SHUTDOWN_GRACE_MS",
    flag: "grace-ms",
    doc: "how long a drain may take before running work is aborted",
  }),
} as const;
