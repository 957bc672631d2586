import { FmError, refName, type HandlerRef, type Logger, type VerifiedBundle } from "@flowmonkey/shared";
import { BlockList } from "node:net";
import type { AnyHandler } from "../sdk/define-handler.js";
import { defineHandler } from "../sdk/define-handler.js";
import { loadBundle, type BundleSources } from "./bundle-loader.js";
import type { BudgetLimits } from "./message-budget.js";
import { processPerTask, warmPool, type ProcessSource } from "./process-source.js";
import { sandboxedHandler } from "./sandboxed-handler.js";
import { prepareIsolation, type IsolationMode, type SandboxIsolation } from "./isolation.js";
import { SandboxProcess } from "./sandbox-process.js";

export interface SandboxSettings {
  /** `type@version` of every sandboxed handler this worker serves. */
  handlers: HandlerRef[];
  /** Where built bundles are looked for first. @default none: the handlers bucket only */
  handlerDir?: string | undefined;
  /** Warm sandbox processes per stateless handler type (its most tasks at once). @default 2 */
  poolSize?: number;
  /** Heap limit of each sandbox process, MiB. @default 64 */
  heapMb?: number;
  /**
   * Everything a sandbox process may map beyond a bare Node process (heap, ArrayBuffers, code),
   * MiB: its address space is capped there. @default heapMb + 192
   */
  memoryMb?: number;
  /**
   * `os` (the default): refuse to start sandboxed handlers unless every OS layer is there (own
   * uid, namespaces, read-only mounts, rlimits, parent death; isolation.ts). `weak`: apply what
   * this machine gives and log what is missing — an operator's explicit choice.
   */
  isolation?: IsolationMode;
  /** CIDRs a sandboxed fetch may reach although they are private (an operator's choice; tests). @default none */
  allowNetworks?: string[];
  limits?: BudgetLimits;
}

export interface SandboxHost {
  /** One handler definition per sandboxed type, usable once start() has loaded the bundles. */
  readonly handlers: ReadonlyMap<string, AnyHandler>;
  /** Loads and verifies every bundle (settings.handlerDir first, then `store`), and starts the warm pools. */
  start(store?: BundleSources["store"]): Promise<void>;
  close(): void;
  stats(): Record<string, { idle: number; total: number; spawned: number }>;
}

export const SANDBOX_DEFAULTS = { poolSize: 2, heapMb: 64, memoryOverHeapMb: 192, isolation: "os" } as const;

function allowList(cidrs: string[]): BlockList | undefined {
  if (cidrs.length === 0) return undefined;
  const list = new BlockList();
  for (const cidr of cidrs) {
    const [net, bits] = cidr.split("/");
    list.addSubnet(net!, Number(bits ?? (net!.includes(":") ? 128 : 32)), net!.includes(":") ? "ipv6" : "ipv4");
  }
  return list;
}

/** The worker's sandboxed handlers: bundles loaded at start, one process source per handler type. */
export function createSandboxHost(settings: SandboxSettings, log: Logger): SandboxHost {
  const poolSize = settings.poolSize ?? SANDBOX_DEFAULTS.poolSize;
  const heapMb = settings.heapMb ?? SANDBOX_DEFAULTS.heapMb;
  const memoryMb = settings.memoryMb ?? heapMb + SANDBOX_DEFAULTS.memoryOverHeapMb;
  if (memoryMb < heapMb) throw new FmError("INVALID_INPUT", `sandbox memoryMb (${memoryMb}) is below its heapMb (${heapMb})`);
  const allow = allowList(settings.allowNetworks ?? []);
  const loaded = new Map<string, AnyHandler>();
  const sources = new Map<string, ProcessSource>();
  const handlers = new Map<string, AnyHandler>();
  for (const ref of settings.handlers) {
    if (handlers.has(ref.type)) throw new FmError("INVALID_INPUT", `sandboxed handler ${ref.type} is listed twice`);
    // The definition exists before the bundle is loaded: the worker needs its type to open pools.
    handlers.set(
      ref.type,
      defineHandler({
        type: ref.type,
        version: ref.version,
        execute(ctx) {
          const handler = loaded.get(ref.type);
          if (!handler) throw new FmError("UNAVAILABLE", `sandboxed handler ${refName(ref)} is not loaded yet`);
          return handler.execute(ctx);
        },
      }),
    );
  }

  const sourceFor = (bundle: VerifiedBundle, isolation: SandboxIsolation): ProcessSource => {
    const code = new TextDecoder().decode(bundle.code);
    const m = bundle.manifest;
    const spawn = () => SandboxProcess.spawn({ code, filename: refName(m), heapMb, env: m.env, launcher: isolation.launcher(), log: log.child({ handler: m.type }) });
    return m.mode === "stateful" ? processPerTask(spawn) : warmPool(spawn, poolSize, log.child({ handler: m.type }));
  };

  return {
    handlers,
    async start(store) {
      const bundleSources: BundleSources = { dir: settings.handlerDir, ...(store ? { store } : {}) };
      if (settings.handlers.length === 0) return;
      // Before any bundle runs: in `os` mode a machine without every OS layer refuses here.
      const isolation = await prepareIsolation({ mode: settings.isolation ?? SANDBOX_DEFAULTS.isolation, memoryMb }, [`--max-old-space-size=${heapMb}`], log);
      for (const ref of settings.handlers) {
        const bundle = await loadBundle(ref, bundleSources);
        const source = sourceFor(bundle, isolation);
        sources.set(ref.type, source);
        await source.warm();
        loaded.set(ref.type, sandboxedHandler(bundle, source, { network: { ...(allow ? { allow } : {}) }, ...(settings.limits ? { limits: settings.limits } : {}) }));
        log.info({ handler: refName(ref), mode: bundle.manifest.mode, sha256: bundle.manifest.bundle.sha256, poolSize }, "sandboxed handler loaded");
      }
    },
    close() {
      for (const source of sources.values()) source.close();
    },
    stats: () => Object.fromEntries([...sources].map(([type, s]) => [type, s.stats()])),
  };
}
