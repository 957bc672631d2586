import type { ContextUpdate, JsonObject } from "@flowmonkey/shared";
import type { ContextApi } from "../sdk/handler-context.js";

export interface ContextRecorder {
  readonly api: ContextApi;
  /** The recorded changes in order, or undefined when the handler changed nothing. */
  updates(): ContextUpdate[] | undefined;
}

// Keys that would reach Object.prototype through a plain object walk.
const FORBIDDEN = new Set(["__proto__", "prototype", "constructor"]);

function parsePath(path: string): string[] {
  const keys = path.split(".");
  for (const key of keys) {
    if (key === "" || FORBIDDEN.has(key)) throw new TypeError(`invalid context path ${JSON.stringify(path)}`);
  }
  return keys;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * Records context changes as ContextUpdates for the result, and keeps a private working copy
 * (cloned on the first write only, so read-only handlers copy nothing) so that reads see the
 * handler's own writes.
 */
export function createContextRecorder(initial: JsonObject): ContextRecorder {
  let view: Record<string, unknown> = initial;
  let copied = false;
  let updates: ContextUpdate[] | undefined;

  const writable = (): Record<string, unknown> => {
    if (!copied) {
      view = structuredClone(initial);
      copied = true;
    }
    return view;
  };
  /** The object that holds the last key of `keys`, created along the way. */
  const parentOf = (keys: string[]): Record<string, unknown> => {
    let node = writable();
    for (const key of keys.slice(0, -1)) {
      const next = node[key];
      node = isObject(next) ? next : (node[key] = {});
    }
    return node;
  };
  const record = (update: ContextUpdate) => (updates ??= []).push(update);

  const api: ContextApi = {
    get(path?: string) {
      if (path === undefined) return view;
      let node: unknown = view;
      for (const key of parsePath(path)) {
        if (!isObject(node) || !Object.hasOwn(node, key)) return undefined;
        node = node[key];
      }
      return node;
    },
    set(path, value) {
      const keys = parsePath(path);
      parentOf(keys)[keys.at(-1)!] = value;
      record({ op: "set", path, value });
    },
    merge(pathOrValue: string | Record<string, unknown>, maybeValue?: Record<string, unknown>) {
      const path = typeof pathOrValue === "string" ? pathOrValue : undefined;
      const value = typeof pathOrValue === "string" ? maybeValue : pathOrValue;
      if (!isObject(value)) throw new TypeError("context.merge needs an object");
      let target: Record<string, unknown>;
      if (path === undefined) {
        target = writable();
      } else {
        const keys = parsePath(path);
        const parent = parentOf(keys);
        const last = keys.at(-1)!;
        const current = parent[last];
        target = isObject(current) ? current : (parent[last] = {});
      }
      for (const [k, v] of Object.entries(value)) if (!FORBIDDEN.has(k)) target[k] = v;
      record(path === undefined ? { op: "merge", value } : { op: "merge", path, value });
    },
    delete(path) {
      const keys = parsePath(path);
      const parent = api.get(keys.slice(0, -1).join(".") || undefined);
      if (isObject(parent) && Object.hasOwn(parent, keys.at(-1)!)) delete parentOf(keys)[keys.at(-1)!];
      record({ op: "delete", path });
    },
  };
  return { api, updates: () => updates };
}
