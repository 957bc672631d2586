/**
 * The only expressions evaluated in the caller's own thread: plain path lookups (`input.order.id`,
 * `` steps.`my step`.status ``), literals, and comparisons or and/or of those. Their cost is at
 * most one walk over the data they read — no regex, no function call, no string building, no
 * loop — so they cannot stall a process, and they are most of a flow's `{% %}`. Everything else
 * goes to the bounded evaluator processes: any other JSONata can loop or allocate without end.
 */
const SAFE_OPERATORS = new Set(["=", "!=", "<", "<=", ">", ">=", "and", "or"]);
const LITERALS = new Set(["string", "number", "value"]);
/** A node with any key beyond these (stages, predicate, group, focus, index, tuple, keepArray…) is not trivial. */
const PLAIN_KEYS = new Set(["type", "value", "position"]);

interface Node {
  type?: unknown;
  value?: unknown;
  steps?: unknown;
  lhs?: unknown;
  rhs?: unknown;
}

const hasOnlyKeys = (node: object, allowed: Set<string>) => Object.keys(node).every((k) => allowed.has(k));

export function isTriviallySafe(ast: unknown): boolean {
  if (ast === null || typeof ast !== "object") return false;
  const node = ast as Node;
  if (typeof node.type === "string" && LITERALS.has(node.type)) return hasOnlyKeys(node, PLAIN_KEYS);
  if (node.type === "path") {
    if (!hasOnlyKeys(node, new Set(["type", "steps", "position", "keepSingletonArray"])) || !Array.isArray(node.steps) || node.steps.length === 0) return false;
    return node.steps.every((step: unknown, i: number) => isPlainStep(step, i));
  }
  if (node.type === "binary" && typeof node.value === "string" && SAFE_OPERATORS.has(node.value)) {
    return hasOnlyKeys(node, new Set(["type", "value", "position", "lhs", "rhs"])) && isTriviallySafe(node.lhs) && isTriviallySafe(node.rhs);
  }
  return false;
}

/** A field name, or `$` (the context) in first place. */
function isPlainStep(step: unknown, index: number): boolean {
  if (step === null || typeof step !== "object" || !hasOnlyKeys(step, PLAIN_KEYS)) return false;
  const { type, value } = step as Node;
  return (type === "name" && typeof value === "string") || (index === 0 && type === "variable" && value === "");
}
