import { z } from "zod";
import { fields, type ConfigOf } from "@flowmonkey/shared";

/** flowmonkey-engine's options: env, overridden by flags. */
export const engineConfigFields = {
  natsUrl: fields.natsUrl,
  natsCreds: fields.natsCreds,
  prefix: fields.prefix,
  databaseUrl: fields.databaseUrl,
  dataDir: fields.dataDir,
  region: fields.region,
  heartbeatTimeoutMs: fields.heartbeatTimeoutMs,
  logLevel: fields.logLevel,
  logPretty: fields.logPretty,
  maxMessageBytes: fields.maxMessageBytes,
  shutdownGraceMs: fields.shutdownGraceMs,
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
  dbPoolSize: {
    schema: z.coerce.number().int().min(1).max(200).default(8),
    env: "FM_DB_POOL_SIZE",
    flag: "db-pool-size",
    doc: "PostgreSQL connections (ignored with embedded PGlite)",
  },
} as const;

export type EngineConfig = ConfigOf<typeof engineConfigFields>;
