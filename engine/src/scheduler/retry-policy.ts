import { backoffDelayMs, type BackoffConfig, type Failure, type RetryPolicy } from "@flowmonkey/shared";

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
