import type { ContextUpdate } from "@flowmonkey/shared";

type Obj = Record<string, unknown>;

const isObject = (v: unknown): v is Obj => v !== null && typeof v === "object" && !Array.isArray(v);
const FORBIDDEN = new Set(["__proto__", "prototype", "constructor"]);

function splitPath(path: string): string[] {
  const parts = path.split(".").filter((p) => p.length > 0);
  // A path may never reach an object's prototype: context comes from handlers we do not trust.
  if (parts.some((p) => FORBIDDEN.has(p))) throw new Error(`context path ${JSON.stringify(path)} is not allowed`);
  return parts;
}

/** Returns the context with the handler's updates applied in order; the input is not mutated. */
export function applyContextUpdates(context: Obj, updates: readonly ContextUpdate[]): Obj {
  const root: Obj = structuredClone(context);
  for (const update of updates) {
    const parts = update.path ? splitPath(update.path) : [];
    const last = parts.pop();
    let parent = root;
    for (const part of parts) {
      if (!isObject(parent[part])) parent[part] = {};
      parent = parent[part] as Obj;
    }
    switch (update.op) {
      case "set":
        if (last !== undefined) parent[last] = update.value;
        break;
      case "delete":
        if (last !== undefined) delete parent[last];
        break;
      case "merge": {
        if (Object.keys(update.value).some((k) => FORBIDDEN.has(k))) throw new Error("context merge has a forbidden key");
        if (last === undefined) Object.assign(parent, update.value);
        else parent[last] = { ...(isObject(parent[last]) ? (parent[last] as Obj) : {}), ...update.value };
        break;
      }
    }
  }
  return root;
}
