import { backoffDelayMs, ENGINE_WORKER_ID, type BackoffConfig, type Failure, type RetryPolicy } from "@flowmonkey/shared";

export const NO_RETRY: RetryPolicy = {
  maxAttempts: 1,
  backoff: "exponential",
  initialDelayMs: 5000,
  maxDelayMs: 300_000,
  jitter: true,
};

export function backoffOf(policy: RetryPolicy): BackoffConfig {
  return { kind: policy.backoff, initialDelayMs: policy.initialDelayMs, maxDelayMs: policy.maxDelayMs, jitter: policy.jitter };
}

/**
 * After attempt `attempt` failed: when to try again, or undefined to give up. Only a
 * retryable failure is retried, never beyond maxAttempts; a failure's own retryAfterMs wins
 * over the backoff.
 */
export function nextRetryDelayMs(
  policy: RetryPolicy,
  attempt: number,
  failure: Failure,
  random: () => number = Math.random,
): number | undefined {
  if (!failure.retryable || attempt >= policy.maxAttempts) return undefined;
  return failure.retryAfterMs ?? backoffDelayMs(backoffOf(policy), attempt, random);
}

/**
 * How many times one step's task may come back refused by a worker that lacks the capabilities
 * the step requires, each time routed again at once without counting as a try. Past that, such a
 * refusal is an ordinary retryable failure: the step's retry policy decides.
 */
export const MAX_REROUTES = 3;

/**
 * A worker refused the task because it lacks capabilities the step requires (CAPABILITY_UNAVAILABLE):
 * the task reached the wrong pool, the handler never ran. The engine's own conclusions never are.
 */
export function isMisrouted(failure: Failure | undefined, workerId: string): boolean {
  return failure?.code === "CAPABILITY_UNAVAILABLE" && failure.retryable && workerId !== ENGINE_WORKER_ID;
}

/** Whether a misrouted attempt is routed again at once, outside the retry policy (`reroutes`: those so far). */
export function reroutesAgain(failure: Failure | undefined, workerId: string, reroutes: number): boolean {
  return isMisrouted(failure, workerId) && reroutes < MAX_REROUTES;
}
