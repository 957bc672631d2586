import type { BackoffConfig } from "../protocol/messages/task.js";

/**
 * Delay before attempt `attempt + 1` after attempt `attempt` failed (attempt counts from 1).
 * Exponential doubles from initialDelayMs (5 s → 10 s → 20 s), capped at maxDelayMs; jitter
 * picks uniformly in [delay/2, delay] so that a burst of failures does not retry in lockstep.
 */
export function backoffDelayMs(config: BackoffConfig, attempt: number, random: () => number = Math.random): number {
  const base =
    config.kind === "fixed" ? config.initialDelayMs : config.initialDelayMs * 2 ** Math.max(0, Math.min(attempt - 1, 30));
  const capped = Math.min(base, config.maxDelayMs);
  return config.jitter ? Math.round(capped / 2 + random() * (capped / 2)) : capped;
}
