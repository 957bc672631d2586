import {
  abortableDelay,
  decode,
  ExecutionEvent,
  Progress,
  TERMINAL_STATUSES,
  type ExecutionView,
  type StepStatus,
} from "@flowmonkey/shared";
import type { Session } from "./session.js";
import type { StepProgress } from "./render.js";

/** Core subjects can drop messages (a reconnect, a slow client); a periodic read repairs the view. */
const RECONCILE_MS = 2000;

export interface FollowState {
  view: ExecutionView;
  progress: Map<string, StepProgress>;
}

export type FollowUpdate =
  | { kind: "snapshot"; state: FollowState }
  | { kind: "exec"; event: ExecutionEvent; state: FollowState }
  | { kind: "progress"; progress: Progress; state: FollowState };

const STEP_STATUS_BY_EVENT: Partial<Record<ExecutionEvent["type"], StepStatus>> = {
  "step.dispatched": "dispatched",
  "step.completed": "completed",
  "step.failed": "failed",
  "step.skipped": "skipped",
};

const isTerminal = (view: ExecutionView) => TERMINAL_STATUSES.includes(view.status);

/**
 * Follows one execution until it ends: subscribes to its fm.exec and fm.progress subjects
 * first, then reads it (so nothing published in between is missed), and calls `onUpdate` for
 * each change. Resolves with the final view, read from the engine once the execution is over.
 */
export async function followExecution(
  session: Session,
  executionId: string,
  onUpdate: (update: FollowUpdate) => void,
  signal?: AbortSignal,
): Promise<ExecutionView> {
  const { nc, api, subjects } = session;
  let wake: (() => void) | undefined;
  const nudge = () => wake?.();
  const inbox: Array<() => void> = [];
  let state: FollowState | undefined;

  const subs = [
    nc.subscribe(subjects.execOfExecution(executionId), {
      callback: (err, msg) => {
        if (err) return;
        const event = safeDecode(() => decode(msg.data, ExecutionEvent));
        if (event) inbox.push(() => applyExec(event));
        nudge();
      },
    }),
    ...subjects.progressOfExecution(executionId).map((subject) =>
      nc.subscribe(subject, {
        callback: (err, msg) => {
          if (err) return;
          const progress = safeDecode(() => decode(msg.data, Progress));
          if (progress) inbox.push(() => applyProgress(progress));
          nudge();
        },
      }),
    ),
  ];

  const applyExec = (event: ExecutionEvent) => {
    // Events from before the last read are already in it; applying them would move a step back.
    if (!state || Date.parse(event.at) < Date.parse(state.view.updatedAt)) return;
    state.view.status = event.status;
    const stepStatus = STEP_STATUS_BY_EVENT[event.type];
    const step = event.stepId ? state.view.steps.find((s) => s.stepId === event.stepId) : undefined;
    if (step && stepStatus) {
      step.status = stepStatus;
      if (event.attempt) step.attempts = event.attempt;
      if (event.error) step.error = event.error;
      if (event.type === "step.dispatched") state.progress.delete(step.stepId);
    }
    onUpdate({ kind: "exec", event, state });
  };
  const applyProgress = (progress: Progress) => {
    if (!state) return;
    state.progress.set(progress.stepId, { percent: progress.percent, message: progress.message });
    onUpdate({ kind: "progress", progress, state });
  };
  const refresh = async () => {
    state = { view: await api.get(executionId), progress: state?.progress ?? new Map() };
    onUpdate({ kind: "snapshot", state });
  };

  try {
    await nc.flush();
    await refresh();
    for (;;) {
      while (inbox.length > 0) inbox.shift()!();
      if (isTerminal(state!.view)) break;
      if (signal?.aborted) throw signal.reason ?? new Error("aborted");
      const woke = new Promise<void>((resolve) => (wake = resolve));
      const reconcile = new AbortController();
      const timer = abortableDelay(RECONCILE_MS, reconcile.signal);
      const onAbort = () => reconcile.abort();
      signal?.addEventListener("abort", onAbort, { once: true });
      await Promise.race([woke, timer]);
      reconcile.abort();
      signal?.removeEventListener("abort", onAbort);
      wake = undefined;
      if (inbox.length === 0 && !signal?.aborted) await refresh();
    }
    // The events carry no outputs; the final read does.
    await refresh();
    return state!.view;
  } finally {
    for (const sub of subs) sub.unsubscribe();
  }
}

function safeDecode<T>(fn: () => T): T | undefined {
  try {
    return fn();
  } catch {
    // Anyone may publish on these subjects; a malformed message is not a reason to stop following.
    return undefined;
  }
}
