import { assertStorable, MAX_RESULT_JSON_DEPTH } from "@flowmonkey/shared";
import { resolveTemplates, type ExpressionScope } from "./expressions.js";

/**
 * `resolveTemplates` for a value the engine is about to store or send (a step's input, the
 * flow's output): an expression can make text PostgreSQL refuses (JSONata's "\u0000" is a
 * NUL), and such a value would fail the transaction carrying it — every retry of it, holding
 * back the result or start that triggered it. Throws UNSUPPORTED_JSON instead, which fails the
 * step (or the execution) like any expression error. A value without expressions comes back
 * as it is, unchecked: it is the flow definition's own, checked when the flow was registered.
 */
export async function resolveStorable(value: unknown, scope: ExpressionScope, what: string): Promise<unknown> {
  const resolved = await resolveTemplates(value, scope);
  if (resolved !== value) assertStorable(resolved, what, MAX_RESULT_JSON_DEPTH);
  return resolved;
}
