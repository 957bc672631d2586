import { toError, type ContextUpdate, type Logger } from "@flowmonkey/shared";
import type { ContextApi } from "../sdk/handler-context.js";
import type { ContextSource } from "./context-source.js";

export interface ContextRecorder {
  readonly api: ContextApi;
  /** The recorded changes in order, or undefined when the handler changed nothing. */
  updates(): ContextUpdate[] | undefined;
}

type Obj = Record<string, unknown>;

// Keys that would reach Object.prototype through a plain object walk.
const FORBIDDEN = new Set(["__proto__", "prototype", "constructor"]);

function parsePath(path: string): string[] {
  const keys = path.split(".");
  for (const key of keys) {
    if (key === "" || FORBIDDEN.has(key)) throw new TypeError(`invalid context path ${JSON.stringify(path)}`);
  }
  return keys;
}

const isObject = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

/** The object that holds the last key of `keys` under `root`, created along the way. */
function parentOf(root: Obj, keys: string[]): Obj {
  let node = root;
  for (const key of keys.slice(0, -1)) {
    const next = node[key];
    node = isObject(next) ? next : (node[key] = {});
  }
  return node;
}

function mergeInto(root: Obj, keys: string[], value: Obj): void {
  const parent = parentOf(root, keys);
  const last = keys.at(-1)!;
  const current = parent[last];
  const target = isObject(current) ? current : (parent[last] = {});
  for (const [k, v] of Object.entries(value)) if (!FORBIDDEN.has(k)) target[k] = v;
}

/**
 * Records context changes as ContextUpdates for the result, and keeps a working view so that
 * reads see the handler's own writes. The view is built one top-level key at a time: a read
 * of `a.b` loads key `a` only (from the task, or from the blob bucket when the context was
 * offloaded), once per task. Writes stay synchronous: a write below a key not loaded yet is
 * kept and replayed on that key when it is loaded; a write of a whole key needs no load.
 * Values shared with the task are copied before their first change only.
 */
export function createContextRecorder(source: ContextSource, log?: () => Logger): ContextRecorder {
  const view: Obj = {};
  /** Keys whose value in `view` is current (present or absent). */
  const resolved = new Set<string>();
  /** Keys whose value in `view` is this recorder's to change in place. */
  const owned = new Set<string>();
  /** Changes below keys not loaded yet, in order. */
  const pending = new Map<string, Array<(root: Obj) => void>>();
  const loading = new Map<string, Promise<void>>();
  let updates: ContextUpdate[] | undefined;
  const record = (update: ContextUpdate) => (updates ??= []).push(update);

  const resolve = (key: string): Promise<void> => {
    if (resolved.has(key)) return Promise.resolve();
    let promise = loading.get(key);
    if (!promise) {
      promise = source.load(key).then(
        ({ value, owned: isOwn }) => {
          loading.delete(key);
          // A write of the whole key while it was loading already decided its value.
          if (resolved.has(key)) return;
          const ops = pending.get(key) ?? [];
          pending.delete(key);
          if (value !== undefined) view[key] = ops.length > 0 && !isOwn ? structuredClone(value) : value;
          if (isOwn || ops.length > 0) owned.add(key);
          for (const op of ops) op(view);
          resolved.add(key);
        },
        (err: unknown) => {
          loading.delete(key);
          throw err;
        },
      );
      loading.set(key, promise);
    }
    return promise;
  };

  /** Applies a change under top-level `key` now, or when the key is loaded. */
  const change = (key: string, op: (root: Obj) => void) => {
    if (!resolved.has(key)) {
      pending.set(key, [...(pending.get(key) ?? []), op]);
      return;
    }
    if (!owned.has(key) && view[key] !== undefined) view[key] = structuredClone(view[key]);
    owned.add(key);
    op(view);
  };
  /** Replaces top-level `key` outright: what was stored no longer matters, so nothing is loaded. */
  const replace = (key: string, value: unknown, present: boolean) => {
    pending.delete(key);
    if (present) view[key] = value;
    else delete view[key];
    resolved.add(key);
    owned.add(key);
  };

  const api: ContextApi = {
    async get(path?: string) {
      if (path === undefined) {
        await Promise.all((await source.keys()).map(resolve));
        // Keys written but never stored need no load; pending writes on stored keys were replayed above.
        return view;
      }
      const keys = parsePath(path);
      await resolve(keys[0]!);
      let node: unknown = view;
      for (const key of keys) {
        if (!isObject(node) || !Object.hasOwn(node, key)) return undefined;
        node = node[key];
      }
      return node;
    },
    async getSafe(path: string, fallback?: unknown) {
      try {
        const value = await api.get(path);
        return value === undefined ? fallback : value;
      } catch (err) {
        log?.().debug({ err: toError(err), path }, "context read failed; using the fallback");
        return fallback;
      }
    },
    set(path, value) {
      const keys = parsePath(path);
      if (keys.length === 1) replace(keys[0]!, value, true);
      else change(keys[0]!, (root) => void (parentOf(root, keys)[keys.at(-1)!] = value));
      record({ op: "set", path, value });
    },
    merge(pathOrValue: string | Obj, maybeValue?: Obj) {
      const path = typeof pathOrValue === "string" ? pathOrValue : undefined;
      const value = typeof pathOrValue === "string" ? maybeValue : pathOrValue;
      if (!isObject(value)) throw new TypeError("context.merge needs an object");
      if (path === undefined) {
        // A merge at the root sets each of its keys.
        for (const [k, v] of Object.entries(value)) if (!FORBIDDEN.has(k)) replace(k, v, true);
      } else {
        const keys = parsePath(path);
        change(keys[0]!, (root) => mergeInto(root, keys, value));
      }
      record(path === undefined ? { op: "merge", value } : { op: "merge", path, value });
    },
    delete(path) {
      const keys = parsePath(path);
      if (keys.length === 1) replace(keys[0]!, undefined, false);
      else
        change(keys[0]!, (root) => {
          // Only walk what exists: deleting a missing path creates nothing.
          let node: unknown = root;
          for (const key of keys.slice(0, -1)) node = isObject(node) && Object.hasOwn(node, key) ? node[key] : undefined;
          if (isObject(node)) delete node[keys.at(-1)!];
        });
      record({ op: "delete", path });
    },
  };
  return { api, updates: () => updates };
}
