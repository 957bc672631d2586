import type { ExecutionStatus, Failure, Priority, ResumeInfo, StepStatus, WaitRequest } from "@flowmonkey/shared";

/** One step of one execution, as kept in the execution row's `steps` document. */
export interface StepState {
  status: StepStatus;
  /** Attempts dispatched so far; the current attempt's number while dispatched. */
  attempts: number;
  output?: unknown;
  error?: Failure;
  startedAt?: string;
  completedAt?: string;
  /** Set while a retry waits for its backoff to pass. */
  retryAt?: string;
  /** A tenant's step while dispatched: the `<region>/<handler>` lane its attempt counts against. */
  lane?: string;
  /** While dispatched: when the attempt's timeout passes (the engine times it out a grace period later). */
  deadlineAt?: string;
  /** While waiting: what for, and since when (the token row in wait_tokens is what resumes it). */
  wait?: WaitRequest & { since: string };
  /** Runs that were resumes after a wait, not retries: they do not count against the retry policy. */
  resumes?: number;
  /**
   * Attempts dispatched again because a worker without the step's required capabilities refused
   * the task (it never ran): like resumes, they do not count against the retry policy.
   */
  reroutes?: number;
  /**
   * A map step's run: counters only (the items are rows of map_items). `attempts` counts runs;
   * `next` is the first item not dispatched yet.
   */
  map?: MapProgress;
  /** A sub-flow step's attempt: the child execution it started (cancelled with the attempt). */
  child?: string;
  /** The run after a wait, while in flight: what its task carries as `resume`. */
  resumed?: ResumeInfo;
  /**
   * FM_EVENTS stream sequence of the last event that resumed this step. The catch-up after a
   * later wait of the step (waits/event-catch-up.ts) only looks past it, so one event never
   * resumes the same step twice, however close its next wait comes.
   */
  lastEventSeq?: number;
}

export interface MapProgress {
  run: number;
  total: number;
  next: number;
  running: number;
  completed: number;
  failed: number;
  /** The items are sub-flows: each attempt's child is cancelled when the run ends early. */
  children?: true;
}

/** An execution as the engine holds it between load and persist. */
export interface ExecutionState {
  id: string;
  flowId: string;
  flowVersion: number;
  status: ExecutionStatus;
  input: unknown;
  context: Record<string, unknown>;
  output?: unknown;
  error?: Failure;
  tenantId?: string;
  region: string;
  priority: Priority;
  labels?: Record<string, string>;
  /** The span that started it (W3C traceparent): dispatches are its children. */
  traceparent?: string;
  steps: Record<string, StepState>;
  /**
   * A sub-flow's execution: the step attempt that started it, and how deep it is (1 = a child of
   * a top-level one); `taskId` when it was a map item's attempt (its end concludes that item).
   */
  parent?: { executionId: string; stepId: string; attempt: number; depth: number; taskId?: string };
  createdAt: string;
  updatedAt: string;
  completedAt?: string;
}

/** Step statuses that let dependents run. A failed step only does when its flow says continue. */
export function isSettled(step: StepState | undefined, continueOnFailure: boolean): boolean {
  if (!step) return false;
  return step.status === "completed" || step.status === "skipped" || (step.status === "failed" && continueOnFailure);
}

export function isTerminalStep(step: StepState): boolean {
  return step.status === "completed" || step.status === "skipped" || step.status === "failed" || step.status === "cancelled";
}
