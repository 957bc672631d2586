import { hostname } from "node:os";
import { randomBytes } from "node:crypto";
import { canonicalCapabilities, createNames, DEFAULT_PREFIX, isToken, KEY_BYTES, resolveExpressionBounds, toError, type BlobStore, type ExpressionBounds, type Logger } from "@flowmonkey/shared";
import { keyPairOf, type VaultKeyPair } from "@flowmonkey/shared/vault";
import type { NatsConnection } from "@nats-io/nats-core";
import { builtInHandlers } from "./handlers/index.js";
import { createSandboxHost, type SandboxHost, type SandboxSettings } from "./sandbox/host.js";
import type { AnyHandler, HandlerDefinition } from "./sdk/define-handler.js";
import { tierOf, TIERS, type Tier } from "./usage/tier.js";

export interface WorkerOptions {
  nc: NatsConnection;
  log: Logger;
  /** Subject prefix of the mesh. @default "fm" */
  prefix?: string;
  /** The region whose tasks this worker runs. */
  region: string;
  /** Built-in handler types by name, and/or handler definitions. @default every built-in handler */
  handlers?: Array<string | HandlerDefinition<any, unknown>>; // eslint-disable-line @typescript-eslint/no-explicit-any
  /** Tasks this worker runs at once, across all its handler types. @default 16 */
  concurrency?: number;
  /** The task consumers' ack_wait, set when the worker ensures them. @default 60000 */
  heartbeatTimeoutMs?: number;
  /**
   * Per handler type: its pool's heartbeat timeout, overriding `heartbeatTimeoutMs` (a pool of
   * long, CPU-heavy tasks may want more slack; one whose lost tasks must move fast, less).
   */
  heartbeatTimeouts?: Record<string, number>;
  /** @default `<host>-<pid>-<random>` */
  workerId?: string;
  /** How long one pull request waits at the server for tasks. @default 3000 (min 1000) */
  fetchExpiresMs?: number;
  /** Drain and close `nc` when the worker closes (for a binary that opened it for the worker). @default false */
  ownsConnection?: boolean;
  /** Progress updates a task sends at most once per this many ms (the latest wins; 100 % always goes out). @default 100 */
  progressIntervalMs?: number;
  /** The pool's size class for usage records. @default derived from `resources` */
  tier?: Tier;
  /** Memory and CPUs this worker is given (its container's limits). @default the machine's */
  resources?: { memoryMb?: number; cpus?: number };
  /**
   * The X25519 private key (32 bytes) that opens the secrets the engine sealed for this worker's
   * pools — every handler type it serves, unless `vaultPrivateKeys` names one. It never leaves
   * the worker. @default none: a task that carries secrets fails with VAULT_NOT_CONFIGURED
   */
  vaultPrivateKey?: Uint8Array | undefined;
  /** Per handler type: the private key of that pool, overriding `vaultPrivateKey`. */
  vaultPrivateKeys?: Record<string, Uint8Array> | undefined;
  /**
   * The blob bucket: large checkpoints, and contexts the engine offloaded. @default the region's
   * `fm_blobs_<region>`, opened on first use (tests pass a wrapper to see which blobs are read).
   */
  blobs?: BlobStore;
  /**
   * The hub's JetStream domain, for a worker connected to a leaf region: the buckets (registry,
   * progress, checkpoints, blobs) live at the hub, while the region's task queue and results
   * stay in the leaf's own domain. @default none (the buckets are in the server's own domain)
   */
  hubDomain?: string | undefined;
  /** What this worker's machine offers (`gpu`, `avx512`…): steps that `require` them run only on such workers. @default [] */
  capabilities?: string[];
  /** Serve Prometheus metrics (FM_METRICS_PORT): 0 = any free port, read `metricsUrl` after start(). @default no listener */
  metrics?: { port: number; host?: string; processMetrics?: boolean } | undefined;
  /**
   * Untrusted handlers: bundles (`flowmonkey handler build`) loaded from `handlerDir` or the
   * `fm_handlers` bucket at start, hash-verified, and run in sandbox processes, never in the
   * worker process. @default none
   */
  sandbox?: SandboxSettings;
  /**
   * Bounds of the transform handler's evaluations (FM_EXPRESSION_TIMEOUT_MS,
   * FM_EXPRESSION_MEMORY_MB, FM_EXPRESSION_PROCESSES): its expressions run in evaluator
   * processes killed past them. @default 5000 ms, 128 MB, 2 processes
   */
  expressions?: Partial<ExpressionBounds>;
}

export interface ResolvedWorkerOptions {
  nc: NatsConnection;
  log: Logger;
  prefix: string;
  region: string;
  handlers: ReadonlyMap<string, AnyHandler>;
  concurrency: number;
  heartbeatTimeoutMs: number;
  /** Every served handler type's pool heartbeat timeout. */
  heartbeatTimeouts: ReadonlyMap<string, number>;
  workerId: string;
  fetchExpiresMs: number;
  ownsConnection: boolean;
  tier: Tier;
  progressIntervalMs: number;
  /** Per served handler type with a key: the key pair that opens its tasks' secrets. */
  vaultKeys: ReadonlyMap<string, VaultKeyPair>;
  blobs: BlobStore | undefined;
  hubDomain: string | undefined;
  capabilities: readonly string[];
  metrics: { port: number; host: string; processMetrics: boolean } | undefined;
  /** The sandboxed handlers (also in `handlers`), loaded when the worker starts. */
  sandbox: SandboxHost | undefined;
  expressions: ExpressionBounds;
}

export class WorkerOptionsError extends Error {
  override readonly name = "WorkerOptionsError";
}

export const WORKER_DEFAULTS = { prefix: DEFAULT_PREFIX, concurrency: 16, heartbeatTimeoutMs: 60_000, fetchExpiresMs: 3000, expressionTimeoutMs: 5000 } as const;

function expressionBounds(input: Partial<ExpressionBounds> | undefined): ExpressionBounds {
  try {
    // A transform task is a step of its own, with its own timeout: more room than an engine-side {% %}.
    return resolveExpressionBounds({ timeoutMs: WORKER_DEFAULTS.expressionTimeoutMs, ...input });
  } catch (err) {
    throw new WorkerOptionsError(`createWorker: expressions: ${toError(err).message}`);
  }
}

function integer(name: string, value: number | undefined, fallback: number, min: number): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < min) throw new WorkerOptionsError(`createWorker: ${name} must be an integer ≥ ${min}, got ${String(value)}`);
  return v;
}

export function defaultWorkerId(): string {
  return `${hostname()}-${process.pid}-${randomBytes(3).toString("hex")}`;
}

/** Defaults are applied here, once; an impossible value stops start-up naming the option. */
export function resolveWorkerOptions(options: WorkerOptions): ResolvedWorkerOptions {
  const prefix = options.prefix ?? WORKER_DEFAULTS.prefix;
  if (!isToken(prefix)) throw new WorkerOptionsError(`createWorker: prefix ${JSON.stringify(prefix)} is not a valid subject token`);
  if (!isToken(options.region)) throw new WorkerOptionsError(`createWorker: region ${JSON.stringify(options.region)} is not a valid subject token`);
  const workerId = options.workerId ?? defaultWorkerId();
  if (!/^[-/=.\w]+$/.test(workerId)) throw new WorkerOptionsError(`createWorker: workerId ${JSON.stringify(workerId)} cannot be a KV key`);

  const handlers = new Map<string, AnyHandler>();
  for (const entry of options.handlers ?? Object.keys(builtInHandlers)) {
    const handler = typeof entry !== "string" ? entry : Object.hasOwn(builtInHandlers, entry) ? builtInHandlers[entry] : undefined;
    if (!handler) {
      const known = Object.keys(builtInHandlers).join(", ");
      throw new WorkerOptionsError(`createWorker: handlers: no built-in handler ${JSON.stringify(entry)} (built-ins: ${known})`);
    }
    if (handlers.has(handler.type)) throw new WorkerOptionsError(`createWorker: handlers: ${handler.type} is listed twice`);
    handlers.set(handler.type, handler);
  }
  const sandbox = options.sandbox ? createSandboxHost(options.sandbox, options.log) : undefined;
  for (const [type, handler] of sandbox?.handlers ?? []) {
    if (handlers.has(type)) throw new WorkerOptionsError(`createWorker: sandbox.handlers: ${type} is also a built-in or in-process handler`);
    handlers.set(type, handler);
  }
  for (const [name, value] of [["poolSize", options.sandbox?.poolSize], ["heapMb", options.sandbox?.heapMb], ["memoryMb", options.sandbox?.memoryMb]] as const) {
    if (value !== undefined) integer(`sandbox.${name}`, value, 1, name === "poolSize" ? 1 : 16);
  }
  if (options.tier !== undefined && !TIERS.includes(options.tier)) throw new WorkerOptionsError(`createWorker: tier must be one of ${TIERS.join(", ")}`);
  if (handlers.size === 0) throw new WorkerOptionsError("createWorker: handlers must name at least one handler");

  const heartbeatTimeoutMs = integer("heartbeatTimeoutMs", options.heartbeatTimeoutMs, WORKER_DEFAULTS.heartbeatTimeoutMs, 1000);
  for (const type of Object.keys(options.heartbeatTimeouts ?? {})) {
    if (!handlers.has(type)) throw new WorkerOptionsError(`createWorker: heartbeatTimeouts: ${type} is not one of this worker's handlers`);
  }
  const heartbeatTimeouts = new Map(
    [...handlers.keys()].map((type) => [type, integer(`heartbeatTimeouts.${type}`, options.heartbeatTimeouts?.[type], heartbeatTimeoutMs, 1000)]),
  );

  const capabilities = resolveCapabilities(options.capabilities);
  if (capabilities.length > 0) {
    // The capability-qualified pools' consumer names carry the whole set: they must stay valid names.
    const names = createNames(prefix);
    for (const type of handlers.keys()) {
      try {
        names.consumers.taskPool(options.region, type, "normal", capabilities);
      } catch (cause) {
        throw new WorkerOptionsError(`createWorker: capabilities: the ${type} pool of ${capabilities.join(", ")} cannot be named (${toError(cause).message})`, { cause });
      }
    }
  }

  return {
    vaultKeys: resolveVaultKeys(options, handlers),
    nc: options.nc,
    log: options.log,
    prefix,
    region: options.region,
    handlers,
    concurrency: integer("concurrency", options.concurrency, WORKER_DEFAULTS.concurrency, 1),
    heartbeatTimeoutMs,
    heartbeatTimeouts,
    workerId,
    fetchExpiresMs: integer("fetchExpiresMs", options.fetchExpiresMs, WORKER_DEFAULTS.fetchExpiresMs, 1000),
    ownsConnection: options.ownsConnection ?? false,
    tier: options.tier ?? tierOf(options.resources),
    progressIntervalMs: integer("progressIntervalMs", options.progressIntervalMs, 100, 0),
    blobs: options.blobs,
    hubDomain: options.hubDomain,
    capabilities,
    metrics: options.metrics && { port: options.metrics.port, host: options.metrics.host ?? "127.0.0.1", processMetrics: options.metrics.processMetrics ?? false },
    sandbox,
    expressions: expressionBounds(options.expressions),
  };
}

/** Tokens (letters, digits, '-', '_': never '~' or '.', which name pools and subjects), unique and sorted. */
function resolveCapabilities(list: string[] | undefined): readonly string[] {
  for (const c of list ?? []) if (!isToken(c)) throw new WorkerOptionsError(`createWorker: capabilities: ${JSON.stringify(c)} is not a valid token`);
  return canonicalCapabilities(list ?? []);
}

/** Each served handler's pool key pair: its own private key, else the worker-wide one; the public half is derived. */
function resolveVaultKeys(options: WorkerOptions, handlers: ReadonlyMap<string, AnyHandler>): ReadonlyMap<string, VaultKeyPair> {
  const checked = (name: string, key: Uint8Array) => {
    // The message names the option, never the key.
    if (!(key instanceof Uint8Array) || key.length !== KEY_BYTES) throw new WorkerOptionsError(`createWorker: ${name} must be ${KEY_BYTES} bytes`);
    return keyPairOf(key);
  };
  const shared = options.vaultPrivateKey ? checked("vaultPrivateKey", options.vaultPrivateKey) : undefined;
  const keys = new Map<string, VaultKeyPair>();
  for (const [type, key] of Object.entries(options.vaultPrivateKeys ?? {})) {
    if (!handlers.has(type)) throw new WorkerOptionsError(`createWorker: vaultPrivateKeys: ${type} is not one of this worker's handlers`);
    keys.set(type, checked(`vaultPrivateKeys.${type}`, key));
  }
  if (shared) for (const type of handlers.keys()) if (!keys.has(type)) keys.set(type, shared);
  return keys;
}
