import { abortableDelay, FmError, toError } from "@flowmonkey/shared";

export interface PollOptions {
  timeoutMs: number;
  intervalMs?: number;
  /** What is awaited, for the timeout message ("the engine's API"). */
  what: string;
  signal?: AbortSignal;
}

/**
 * Calls `check` until it resolves, with a deadline; the timeout error carries the last failure.
 * Waiting on a condition rather than a fixed sleep keeps start-up as fast as the slowest part.
 */
export async function pollUntil<T>(check: () => Promise<T>, options: PollOptions): Promise<T> {
  const deadline = Date.now() + options.timeoutMs;
  let last: Error | undefined;
  for (;;) {
    if (options.signal?.aborted) throw toError(options.signal.reason);
    try {
      return await check();
    } catch (thrown) {
      last = toError(thrown);
    }
    const wait = Math.min(options.intervalMs ?? 200, deadline - Date.now());
    if (wait <= 0) break;
    await abortableDelay(wait, options.signal);
  }
  throw new FmError("TIMEOUT", `${options.what} did not answer within ${options.timeoutMs} ms: ${last?.message ?? "no attempt"}`, {
    cause: last,
  });
}
