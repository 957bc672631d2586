import { fields, loadConfig, type ConfigField, type LoadConfigOptions } from "@flowmonkey/shared";
import { z } from "zod";
import { BUILT_IN_HANDLER_TYPES } from "./handlers/index.js";

const workerFieldsOnly = {
  handlers: {
    schema: z
      .string()
      .default(BUILT_IN_HANDLER_TYPES.join(","))
      .transform((list) => [...new Set(list.split(",").map((h) => h.trim()).filter((h) => h !== ""))])
      .pipe(z.array(z.enum(BUILT_IN_HANDLER_TYPES as [string, ...string[]])).min(1, "name at least one handler")),
    env: "FM_HANDLERS",
    flag: "handlers",
    doc: `handler types to serve, comma-separated (default: all built-ins: ${BUILT_IN_HANDLER_TYPES.join(", ")})`,
  },
  concurrency: {
    schema: z.coerce.number().int().min(1).max(100_000).default(16),
    env: "FM_CONCURRENCY",
    flag: "concurrency",
    doc: "tasks run at once by this worker, across all its handler types",
  },
  workerId: {
    schema: z
      .string()
      .regex(/^[-/=.\w]+$/, "letters, digits and - / = . _ only (it is a KV key)")
      .optional(),
    env: "FM_WORKER_ID",
    flag: "worker-id",
    doc: "this worker's id in the registry (default: host-pid-random)",
  },
} satisfies Record<string, ConfigField>;

/** Everything `flowmonkey-worker` reads; flags override the environment. */
export const workerFields = {
  natsUrl: fields.natsUrl,
  natsCreds: fields.natsCreds,
  prefix: fields.prefix,
  region: fields.region,
  heartbeatTimeoutMs: fields.heartbeatTimeoutMs,
  logLevel: fields.logLevel,
  logPretty: fields.logPretty,
  shutdownGraceMs: fields.shutdownGraceMs,
  ...workerFieldsOnly,
};

export function loadWorkerConfig(options: LoadConfigOptions = {}) {
  return loadConfig(workerFields, { program: "flowmonkey-worker", ...options });
}
export type WorkerConfig = ReturnType<typeof loadWorkerConfig>;
