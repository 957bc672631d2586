import type { FlowGraph } from "@flowmonkey/shared";
import { isSettled, isTerminalStep, type StepState } from "./state.js";

/**
 * Pure scheduling decisions: which steps may start now, and whether the execution is over.
 * No I/O and no expression evaluation here; `when` and inputs are evaluated by the caller.
 */
export function readySteps(graph: FlowGraph, steps: Readonly<Record<string, StepState>>): string[] {
  const ready: string[] = [];
  for (const id of graph.order) {
    if (steps[id]?.status !== "pending") continue;
    const deps = graph.dependsOn.get(id) ?? [];
    if (deps.every((dep) => isSettled(steps[dep], graph.steps.get(dep)?.onFailure === "continue"))) ready.push(id);
  }
  return ready;
}

export type ExecutionOutcome =
  | { kind: "running" }
  | { kind: "completed" }
  | { kind: "failed"; stepId: string };

/**
 * Failed as soon as a step fails whose flow does not say continue; completed when every step
 * is done (completed, skipped, or failed-and-continued); otherwise still running.
 */
export function executionOutcome(graph: FlowGraph, steps: Readonly<Record<string, StepState>>): ExecutionOutcome {
  for (const id of graph.order) {
    const step = steps[id];
    if (step?.status === "failed" && graph.steps.get(id)?.onFailure !== "continue") return { kind: "failed", stepId: id };
  }
  const allDone = graph.order.every((id) => {
    const step = steps[id];
    return step !== undefined && isTerminalStep(step);
  });
  return allDone ? { kind: "completed" } : { kind: "running" };
}

/**
 * A live execution's status: `waiting` while nothing runs but something waits, `running`
 * otherwise. Dashboards and list filters see parked executions apart from busy ones.
 */
export function liveStatus(steps: Readonly<Record<string, StepState>>): "running" | "waiting" {
  let waiting = false;
  for (const step of Object.values(steps)) {
    if (step.status === "dispatched") return "running";
    if (step.status === "waiting") waiting = true;
  }
  return waiting ? "waiting" : "running";
}

/** The step states of a new execution: everything pending. */
export function initialSteps(graph: FlowGraph): Record<string, StepState> {
  return Object.fromEntries(graph.order.map((id) => [id, { status: "pending", attempts: 0 } satisfies StepState]));
}
