/** Test helpers for sandboxed handlers: a bundle from a source expression, a pool, a handler. */
import { HandlerManifest, sha256Hex, silentLogger, type HandlerManifestInput, type VerifiedBundle } from "@flowmonkey/shared";
import type { AnyHandler } from "../src/sdk/define-handler.js";
import { processPerTask, warmPool, type ProcessSource } from "../src/sandbox/process-source.js";
import { sandboxedHandler, type SandboxedHandlerOptions } from "../src/sandbox/sandboxed-handler.js";
import { SandboxProcess } from "../src/sandbox/sandbox-process.js";
import { prepareIsolation, type SandboxIsolation } from "../src/sandbox/isolation.js";

let isolation: Promise<SandboxIsolation> | undefined;
/**
 * The worker's real OS isolation (`os` mode, as a worker runs by default), prepared once per
 * test file. On a machine that cannot give it (not root) this rejects with
 * SANDBOX_ISOLATION_UNAVAILABLE: the sandbox tests run where the worker would run sandboxes.
 */
export function testIsolation(): Promise<SandboxIsolation> {
  isolation ??= prepareIsolation({ mode: "os", memoryMb: 256 }, ["--max-old-space-size=64"], silentLogger());
  return isolation;
}

/**
 * A built bundle whose handler is the JavaScript expression `handler` (an object with
 * `execute(ctx)`), in the shape `flowmonkey handler build` produces (an IIFE that sets `__fmHandler`).
 */
export function bundleOf(handler: string, manifest: Partial<HandlerManifestInput> & { type: string }): VerifiedBundle {
  const code = new TextEncoder().encode(`var __fmHandler = { default: (${handler}) };\n`);
  const parsed = HandlerManifest.parse({ version: "1.0.0", ...manifest, bundle: { file: "handler.js", sha256: sha256Hex(code), bytes: code.byteLength } });
  return { manifest: { ...parsed, bundle: parsed.bundle! }, code };
}

export interface TestSandbox {
  handler: AnyHandler;
  source: ProcessSource;
  close(): void;
}

/** A sandboxed handler over a warm pool (stateless) or a process per task (stateful), as the worker builds it. */
export async function sandboxFor(
  bundle: VerifiedBundle,
  options: SandboxedHandlerOptions & { size?: number; heapMb?: number; /** false: no OS layers (the benchmark's baseline only) */ isolated?: boolean } = {},
): Promise<TestSandbox> {
  const log = silentLogger();
  const launch = options.isolated === false ? { launcher: () => [] } : await testIsolation();
  const spawn = () =>
    SandboxProcess.spawn({
      code: new TextDecoder().decode(bundle.code),
      filename: `${bundle.manifest.type}@${bundle.manifest.version}`,
      heapMb: options.heapMb ?? 64,
      env: bundle.manifest.env,
      launcher: launch.launcher(),
      log,
    });
  const source = bundle.manifest.mode === "stateful" ? processPerTask(spawn) : warmPool(spawn, options.size ?? 2, log);
  await source.warm();
  return { handler: sandboxedHandler(bundle, source, options), source, close: () => source.close() };
}
