/**
 * What of a `{% %}` scope an expression can observe, read from its AST, so that only that part
 * is copied to an evaluator process: the scope holds every finished step's output, and copying
 * it all for `{% 'paid ' & steps.charge.id %}` would cost the engine more than the evaluation.
 *
 * Sound by over-approximation: a top-level key (input, context, steps, execution) is kept when
 * its name appears anywhere in the expression; a step's output when its id follows `steps.` in a
 * path. Anything that can reach data without naming it — `$`, `$$`, `*`, `**`, `%`, `$eval`,
 * `steps` used as a whole value — keeps the whole scope (or the whole of `steps`).
 */
export interface ScopeNeeds {
  /** Top-level keys to keep; undefined = the whole scope. */
  keys: Set<string> | undefined;
  /** Step ids whose output to keep; undefined = every step. */
  steps: Set<string> | undefined;
}

const WHOLE: ScopeNeeds = { keys: undefined, steps: undefined };
const REACHES_UNNAMED = new Set(["wildcard", "descendant", "parent"]);

interface Node {
  type?: unknown;
  value?: unknown;
  steps?: unknown;
  procedure?: unknown;
}

export function scopeNeeds(ast: unknown): ScopeNeeds {
  const names = new Set<string>();
  const stepIds = new Set<string>();
  let stepsMentions = 0;
  let stepsNavigations = 0;
  const stack: unknown[] = [ast];
  while (stack.length > 0) {
    const v = stack.pop();
    if (Array.isArray(v)) {
      for (const item of v) stack.push(item);
      continue;
    }
    if (v === null || typeof v !== "object") continue;
    const node = v as Node;
    if (typeof node.type === "string") {
      if (REACHES_UNNAMED.has(node.type)) return WHOLE;
      // `$` and `$$` are the data itself; `$eval` runs a string we cannot see.
      if (node.type === "variable" && (node.value === "" || node.value === "$" || node.value === "eval")) return WHOLE;
      if (node.type === "name" && typeof node.value === "string") {
        names.add(node.value);
        if (node.value === "steps") stepsMentions++;
      }
      if (node.type === "path" && Array.isArray(node.steps)) {
        const [first, second] = node.steps as Node[];
        if (first?.type === "name" && first.value === "steps" && isPlainName(first) && second?.type === "name" && typeof second.value === "string") {
          stepsNavigations++;
          stepIds.add(second.value);
        }
      }
    }
    for (const child of Object.values(node)) if (child !== null && typeof child === "object") stack.push(child);
  }
  // Every mention of `steps` must be `steps.<id>…`; otherwise (a whole value, `steps[0]`, `input.steps`) keep all steps.
  return { keys: names, steps: stepsMentions === stepsNavigations ? stepIds : undefined };
}

/** A name step with nothing attached (no predicate, stages, group, focus…). */
function isPlainName(step: Node): boolean {
  return Object.keys(step).every((k) => k === "type" || k === "value" || k === "position");
}

/** Merges what several expressions need: the union, whole if any needs the whole. */
export function mergeScopeNeeds(all: readonly ScopeNeeds[]): ScopeNeeds {
  const keys = new Set<string>();
  const steps = new Set<string>();
  let wholeKeys = false;
  let wholeSteps = false;
  for (const needs of all) {
    if (needs.keys === undefined) wholeKeys = true;
    else for (const k of needs.keys) keys.add(k);
    if (needs.steps === undefined) wholeSteps = true;
    else for (const s of needs.steps) steps.add(s);
  }
  return { keys: wholeKeys ? undefined : keys, steps: wholeSteps ? undefined : steps };
}

/** The part of a scope object (`{input, context, steps, execution}`) that `needs` says may be observed. */
export function pruneScope(data: unknown, needs: ScopeNeeds): unknown {
  if (needs.keys === undefined || data === null || typeof data !== "object" || Array.isArray(data)) return data;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(data)) {
    if (!needs.keys.has(key)) continue;
    if (key === "steps" && needs.steps !== undefined && value !== null && typeof value === "object" && !Array.isArray(value)) {
      out[key] = Object.fromEntries(Object.entries(value).filter(([id]) => needs.steps!.has(id)));
    } else out[key] = value;
  }
  return out;
}
