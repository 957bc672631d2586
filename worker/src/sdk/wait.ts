import { randomUUID } from "node:crypto";
import type { WaitRequest } from "@flowmonkey/shared";

/** What a handler asks for when it returns `ctx.wait(...)` or calls `ctx.pause.wait(...)`. */
export interface WaitOptions {
  /**
   * The token that resumes the step (`fm.api.resume`, `POST /v1/resume/:token`). Must be unique
   * among waiting steps; default: a random one, shown in the `waiting` event and executions.get.
   */
  resumeToken?: string;
  /** Resume with reason "timeout" at this time... */
  waitUntil?: Date | string;
  /** ...or this long from now (whichever is given; `waitUntil` wins). */
  timeoutMs?: number;
  /** Resume when an event of this name arrives on `fm.events.<event>` and `filter` (JSONata over `{name, data, executionId, stepId, at}`) is truthy. */
  resumeOn?: { event: string; filter?: string };
  /** Why it waits, for operators. */
  reason?: string;
}

/**
 * A handler's answer "not done yet: park this step". Returned by `ctx.wait()`; the worker sends
 * it as a `wait` result and frees the slot. The step runs again when resumed, with `ctx.resume`.
 */
export class Wait {
  readonly request: WaitRequest;

  constructor(options: WaitOptions, now = Date.now()) {
    const until = options.waitUntil ?? (options.timeoutMs === undefined ? undefined : new Date(now + options.timeoutMs));
    this.request = {
      resumeToken: options.resumeToken ?? `wt_${randomUUID()}`,
      ...(until === undefined ? {} : { waitUntil: new Date(until).toISOString() }),
      ...(options.resumeOn ? { resumeOn: options.resumeOn } : {}),
      ...(options.reason ? { reason: options.reason } : {}),
    };
  }
}

/**
 * Thrown by `ctx.pause.wait()` to end the run once its checkpoint is saved: a stateful handler
 * stops where it is and continues from the checkpoint when resumed.
 */
export class PauseSignal extends Error {
  override readonly name = "PauseSignal";
  constructor(readonly wait: Wait) {
    super(`paused: ${wait.request.reason ?? "waiting"}`);
  }
}
