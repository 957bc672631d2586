import { FmError } from "../errors/fm-error.js";
import type { FlowDefinition, StepDefinition } from "./definition.js";

/** What a sub-flow step (`flow:` instead of `handler:`) shows as its handler: no worker runs it. */
export const SUBFLOW_HANDLER = "subflow";

/** A step as the engine runs it: `handler` is always set (SUBFLOW_HANDLER for a sub-flow step). */
export type CompiledStep = StepDefinition & { handler: string };

/** A flow's steps with their predecessors resolved; built once per definition version. */
export interface FlowGraph {
  steps: ReadonlyMap<string, CompiledStep>;
  /** Step ids in definition order. */
  order: readonly string[];
  dependsOn: ReadonlyMap<string, readonly string[]>;
  dependents: ReadonlyMap<string, readonly string[]>;
}

/**
 * Resolves implicit ordering (a step without `dependsOn` follows the one listed before it),
 * and rejects duplicate ids, unknown dependencies and cycles with the cycle's path.
 */
export function buildGraph(flow: FlowDefinition): FlowGraph {
  const steps = new Map<string, CompiledStep>();
  for (const step of flow.steps) {
    if (steps.has(step.id)) throw invalid(flow, `step id "${step.id}" is used twice`);
    steps.set(step.id, { ...step, handler: step.handler ?? SUBFLOW_HANDLER });
  }
  const order = flow.steps.map((s) => s.id);
  const dependsOn = new Map<string, string[]>();
  flow.steps.forEach((step, index) => {
    const deps = step.dependsOn ?? (index === 0 ? [] : [order[index - 1]!]);
    for (const dep of deps) {
      if (!steps.has(dep)) throw invalid(flow, `step "${step.id}" depends on unknown step "${dep}"`);
      if (dep === step.id) throw invalid(flow, `step "${step.id}" depends on itself`);
    }
    dependsOn.set(step.id, [...new Set(deps)]);
  });
  const dependents = new Map<string, string[]>(order.map((id) => [id, []]));
  for (const [id, deps] of dependsOn) for (const dep of deps) dependents.get(dep)!.push(id);

  const cycle = findCycle(order, dependsOn);
  if (cycle) throw invalid(flow, `steps form a cycle: ${cycle.join(" -> ")}`);
  return { steps, order, dependsOn, dependents };
}

/** Depth-first search; returns the first cycle as a path that starts and ends on the same id. */
export function findCycle(ids: readonly string[], edges: ReadonlyMap<string, readonly string[]>): string[] | undefined {
  const state = new Map<string, "visiting" | "done">();
  const path: string[] = [];
  const visit = (id: string): string[] | undefined => {
    const seen = state.get(id);
    if (seen === "done") return undefined;
    if (seen === "visiting") return [...path.slice(path.indexOf(id)), id];
    state.set(id, "visiting");
    path.push(id);
    for (const next of edges.get(id) ?? []) {
      const found = visit(next);
      if (found) return found;
    }
    path.pop();
    state.set(id, "done");
    return undefined;
  };
  for (const id of ids) {
    const found = visit(id);
    if (found) return found;
  }
  return undefined;
}

function invalid(flow: FlowDefinition, message: string): FmError {
  return new FmError("INVALID_FLOW", `flow "${flow.id}": ${message}`);
}
