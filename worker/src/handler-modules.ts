import { ConfigError, isToken } from "@flowmonkey/shared";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { builtInHandlers } from "./handlers/index.js";
import type { AnyHandler } from "./sdk/define-handler.js";

/**
 * `flowmonkey-worker --handler-modules ./handlers.js`: your own (trusted) handlers, served in
 * process beside the built-ins, without writing a worker program. Each module's default export
 * (a handler or an array of handlers) and every named export that is a handler
 * (`defineHandler({ type, execute })`) is taken.
 */
export async function loadHandlerModules(paths: readonly string[], cwd = process.cwd()): Promise<AnyHandler[]> {
  const found = new Map<string, { handler: AnyHandler; from: string }>();
  for (const path of paths) {
    let module: Record<string, unknown>;
    try {
      module = (await import(pathToFileURL(resolve(cwd, path)).href)) as Record<string, unknown>;
    } catch (err) {
      throw new ConfigError(`--handler-modules: ${path} does not load: ${(err as Error).message}`);
    }
    const exported = Object.entries(module).flatMap(([name, value]) => (name === "default" && Array.isArray(value) ? value : [value]));
    const handlers = exported.filter(isHandler);
    if (handlers.length === 0) throw new ConfigError(`--handler-modules: ${path} exports no handler (an object with a type and an execute function: defineHandler)`);
    for (const handler of handlers) {
      const other = found.get(handler.type);
      if (other && other.handler !== handler) throw new ConfigError(`--handler-modules: handler type ${handler.type} is exported by ${other.from} and ${path}`);
      found.set(handler.type, { handler, from: path });
    }
  }
  return [...found.values()].map((f) => f.handler);
}

function isHandler(value: unknown): value is AnyHandler {
  const v = value as { type?: unknown; execute?: unknown } | null;
  return typeof v === "object" && v !== null && typeof v.type === "string" && isToken(v.type) && typeof v.execute === "function";
}

/**
 * What a worker serves: the `--handlers` list when given (each a built-in or a module's
 * handler), else every module handler, else every built-in.
 */
export function selectHandlers(names: readonly string[] | undefined, fromModules: readonly AnyHandler[]): Array<string | AnyHandler> {
  const own = new Map(fromModules.map((h) => [h.type, h]));
  for (const type of own.keys()) {
    if (type in builtInHandlers) throw new ConfigError(`--handler-modules: handler type ${type} is a built-in's; give yours another name`);
  }
  if (names === undefined) return fromModules.length > 0 ? [...fromModules] : Object.keys(builtInHandlers);
  return names.map((name) => {
    if (own.has(name)) return own.get(name)!;
    if (name in builtInHandlers) return name;
    const known = [...Object.keys(builtInHandlers), ...own.keys()].join(", ");
    throw new ConfigError(`--handlers: no handler ${JSON.stringify(name)} (built-ins and your modules' handlers: ${known})`);
  });
}
