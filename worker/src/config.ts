import { Base64Key, HandlerRef, fields, JsDomain, jsonText, loadConfig, Token, type ConfigField, type LoadConfigOptions } from "@flowmonkey/shared";
import { z } from "zod";
import { BUILT_IN_HANDLER_TYPES } from "./handlers/index.js";

const workerFieldsOnly = {
  handlers: {
    schema: z
      .string()
      .transform((list) => [...new Set(list.split(",").map((h) => h.trim()).filter((h) => h !== ""))])
      .pipe(z.array(Token).min(1, "name at least one handler"))
      .optional(),
    env: "FM_HANDLERS",
    flag: "handlers",
    doc: `handler types to serve, comma-separated: built-ins (${BUILT_IN_HANDLER_TYPES.join(", ")}) and your modules' handlers (default: your modules' handlers if any, else every built-in)`,
  },
  handlerModules: {
    schema: z
      .string()
      .default("")
      .transform((list) => list.split(",").map((m) => m.trim()).filter((m) => m !== "")),
    env: "FM_HANDLER_MODULES",
    flag: "handler-modules",
    doc: "your own handlers: JavaScript modules, comma-separated, whose default export and named exports made with defineHandler are served in process",
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
  sandboxedHandlers: {
    schema: z
      .string()
      .default("")
      .transform((list) => [...new Set(list.split(",").map((h) => h.trim()).filter((h) => h !== ""))])
      .pipe(z.array(HandlerRef)),
    env: "FM_SANDBOXED_HANDLERS",
    flag: "sandboxed-handlers",
    doc: "untrusted handler bundles to serve in sandboxes, comma-separated type@version (from FM_HANDLER_DIR, else the fm_handlers bucket)",
  },
  handlerDir: {
    schema: z.string().min(1).optional(),
    env: "FM_HANDLER_DIR",
    flag: "handler-dir",
    doc: "directory of built handler bundles (<dir>/<type>@<version>/manifest.json + handler.js), looked in before the fm_handlers bucket",
  },
  sandboxPoolSize: {
    schema: z.coerce.number().int().min(1).max(256).default(2),
    env: "FM_SANDBOX_POOL_SIZE",
    flag: "sandbox-pool-size",
    doc: "warm sandbox processes per stateless sandboxed handler (its most tasks at once on this worker)",
  },
  sandboxHeapMb: {
    schema: z.coerce.number().int().min(16).max(16_384).default(64),
    env: "FM_SANDBOX_HEAP_MB",
    flag: "sandbox-heap-mb",
    doc: "heap limit of each sandbox process in MiB; a handler that exceeds it fails with OOM",
  },
  sandboxMemoryMb: {
    schema: z.coerce.number().int().min(32).max(65_536).optional(),
    env: "FM_SANDBOX_MEMORY_MB",
    flag: "sandbox-memory-mb",
    doc: "all memory a sandbox process may map beyond a bare Node process (heap, ArrayBuffers, code), in MiB; enforced as an address-space limit (default: the heap limit + 192)",
  },
  sandboxIsolation: {
    schema: z.enum(["os", "weak"]).default("os"),
    env: "FM_SANDBOX_ISOLATION",
    flag: "sandbox-isolation",
    doc: "os: refuse to run sandboxed handlers unless every OS isolation layer is available (own uid, namespaces, read-only mounts, rlimits; needs root on Linux); weak: accept what the machine gives and log what is missing",
  },
  sandboxAllowNetworks: {
    schema: z
      .string()
      .default("")
      .transform((list) => list.split(",").map((c) => c.trim()).filter((c) => c !== ""))
      .pipe(z.array(z.union([z.cidrv4(), z.cidrv6()]))),
    env: "FM_SANDBOX_ALLOW_NETWORKS",
    flag: "sandbox-allow-networks",
    doc: "CIDRs a sandboxed fetch may reach although they are private or loopback (default: none)",
  },
} satisfies Record<string, ConfigField>;

/** Everything `flowmonkey-worker` reads; flags override the environment. */
export const workerFields = {
  natsUrl: fields.natsUrl,
  natsCreds: fields.natsCreds,
  natsUser: fields.natsUser,
  natsPassword: fields.natsPassword,
  natsTlsCa: fields.natsTlsCa,
  natsTlsCert: fields.natsTlsCert,
  natsTlsKey: fields.natsTlsKey,
  prefix: fields.prefix,
  region: fields.region,
  heartbeatTimeoutMs: fields.heartbeatTimeoutMs,
  logLevel: fields.logLevel,
  logPretty: fields.logPretty,
  shutdownGraceMs: fields.shutdownGraceMs,
  otlpEndpoint: fields.otlpEndpoint,
  metricsPort: fields.metricsPort,
  metricsHost: fields.metricsHost,
  expressionTimeoutMs: {
    ...fields.expressionTimeoutMs,
    // A transform task is a step of its own: more room than an engine-side {% %} (1000 ms).
    schema: z.coerce.number().int().min(10).max(600_000).default(5000),
    doc: "time limit of one transform handler evaluation; past it the evaluator process is killed and the step fails with EXPRESSION_ERROR",
  },
  expressionMemoryMb: fields.expressionMemoryMb,
  expressionProcesses: fields.expressionProcesses,
  ...workerFieldsOnly,
};

export function loadWorkerConfig(options: LoadConfigOptions = {}) {
  return loadConfig(workerFields, { program: "flowmonkey-worker", ...options });
}
export type WorkerConfig = ReturnType<typeof loadWorkerConfig>;
