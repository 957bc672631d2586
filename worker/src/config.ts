import { Base64Key, fields, JsDomain, jsonText, loadConfig, Token, type ConfigField, type LoadConfigOptions } from "@flowmonkey/shared";
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
  capabilities: {
    schema: z
      .string()
      .default("")
      .transform((list) => [...new Set(list.split(",").map((c) => c.trim()).filter((c) => c !== ""))])
      .pipe(z.array(Token).max(32)),
    env: "FM_CAPABILITIES",
    flag: "capabilities",
    doc: "what this worker offers, comma-separated (gpu,…): steps that `require` them are routed only to pools with such a live worker",
  },
  hubDomain: {
    schema: JsDomain.optional(),
    env: "FM_HUB_DOMAIN",
    flag: "hub-domain",
    doc: "the hub's JetStream domain, for a worker connected to a leaf region (the buckets live at the hub)",
  },
  concurrency: {
    schema: z.coerce.number().int().min(1).max(100_000).default(16),
    env: "FM_CONCURRENCY",
    flag: "concurrency",
    doc: "tasks run at once by this worker, across all its handler types",
  },
  heartbeatTimeouts: {
    schema: z
      .string()
      .default("")
      .transform((list, ctx) => {
        const out: Record<string, number> = {};
        for (const item of list.split(",").map((s) => s.trim()).filter((s) => s !== "")) {
          const match = /^([A-Za-z0-9_-]+)=(\d+)$/.exec(item);
          if (!match || Number(match[2]) < 1000) {
            ctx.addIssue({ code: "custom", message: `"${item}" is not handler=milliseconds (at least 1000)` });
            return z.NEVER;
          }
          out[match[1]!] = Number(match[2]);
        }
        return out;
      }),
    env: "FM_POOL_HEARTBEAT_TIMEOUTS",
    flag: "pool-heartbeat-timeouts",
    doc: "per handler pool, its heartbeat timeout overriding FM_HEARTBEAT_TIMEOUT_MS: handler=ms,handler=ms",
  },
  tier: {
    schema: z.enum(["small", "medium", "large"]).optional(),
    env: "FM_WORKER_TIER",
    flag: "tier",
    doc: "this pool's size class in usage records (default: from --memory-mb/--cpus, else the machine's)",
  },
  memoryMb: {
    schema: z.coerce.number().int().min(16).optional(),
    env: "FM_WORKER_MEMORY_MB",
    flag: "memory-mb",
    doc: "memory this worker is given, in MiB (decides its tier; default: the machine's)",
  },
  cpus: {
    schema: z.coerce.number().positive().max(1024).optional(),
    env: "FM_WORKER_CPUS",
    flag: "cpus",
    doc: "CPUs this worker is given (decides its tier; default: the machine's)",
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
  vaultPrivateKey: {
    schema: Base64Key.optional(),
    env: "FM_VAULT_PRIVATE_KEY",
    doc: "private key (base64, from `flowmonkey secrets keygen`) that opens the secrets sealed for this worker's pools",
  },
  vaultPrivateKeys: {
    schema: jsonText(z.record(z.string(), Base64Key)).optional(),
    env: "FM_VAULT_PRIVATE_KEYS",
    doc: 'per handler, its pool\'s private key, overriding FM_VAULT_PRIVATE_KEY: {"<handler>": "<base64>"}',
  },
} satisfies Record<string, ConfigField>;

/** Everything `flowmonkey-worker` reads; flags override the environment. */
export const workerFields = {
  natsUrl: fields.natsUrl,
  natsCreds: fields.natsCreds,
  natsUser: fields.natsUser,
  natsPassword: fields.natsPassword,
  prefix: fields.prefix,
  region: fields.region,
  heartbeatTimeoutMs: fields.heartbeatTimeoutMs,
  logLevel: fields.logLevel,
  logPretty: fields.logPretty,
  shutdownGraceMs: fields.shutdownGraceMs,
  otlpEndpoint: fields.otlpEndpoint,
  metricsPort: fields.metricsPort,
  metricsHost: fields.metricsHost,
  ...workerFieldsOnly,
};

export function loadWorkerConfig(options: LoadConfigOptions = {}) {
  return loadConfig(workerFields, { program: "flowmonkey-worker", ...options });
}
export type WorkerConfig = ReturnType<typeof loadWorkerConfig>;
