import { describe, expect, it } from "vitest";
import type { Failure, RetryPolicy } from "@flowmonkey/shared";
import { backoffOf, isMisrouted, MAX_REROUTES, nextRetryDelayMs, NO_RETRY, reroutesAgain } from "../../src/scheduler/retry-policy.js";

const policy: RetryPolicy = { maxAttempts: 3, backoff: "exponential", initialDelayMs: 5000, maxDelayMs: 300_000, jitter: false };
const retryable: Failure = { code: "HANDLER_FAILED", message: "boom", retryable: true };
const terminal: Failure = { code: "CARD_DECLINED", message: "no", retryable: false };
const noRandom = () => {
  throw new Error("random() must not be called");
};

describe("nextRetryDelayMs", () => {
  it.each<[string, RetryPolicy, number, Failure, number | undefined]>([
    ["attempt 1 of 3, retryable → 5 s", policy, 1, retryable, 5000],
    ["attempt 2 of 3, retryable → 10 s", policy, 2, retryable, 10_000],
    ["attempt 3 of 3 → give up", policy, 3, retryable, undefined],
    ["beyond maxAttempts → give up", policy, 7, retryable, undefined],
    ["non-retryable → give up at once", policy, 1, terminal, undefined],
    ["non-retryable with retryAfterMs → still give up", policy, 1, { ...terminal, retryAfterMs: 10 }, undefined],
    ["retryAfterMs wins over the backoff", policy, 1, { ...retryable, retryAfterMs: 1234 }, 1234],
    ["retryAfterMs 0 means now", policy, 2, { ...retryable, retryAfterMs: 0 }, 0],
    ["retryAfterMs does not extend maxAttempts", policy, 3, { ...retryable, retryAfterMs: 1 }, undefined],
    ["fixed backoff", { ...policy, backoff: "fixed", maxAttempts: 5 }, 4, retryable, 5000],
    ["capped", { ...policy, maxAttempts: 20, maxDelayMs: 30_000 }, 10, retryable, 30_000],
    ["the default policy (NO_RETRY) never retries", NO_RETRY, 1, retryable, undefined],
    ["maxAttempts 1 never retries", { ...policy, maxAttempts: 1 }, 1, retryable, undefined],
  ])("%s", (_name, p, attempt, failure, expected) => {
    expect(nextRetryDelayMs(p, attempt, failure, noRandom)).toBe(expected);
  });

  it("uses the injected random for jitter", () => {
    const jittered = { ...policy, jitter: true };
    expect(nextRetryDelayMs(jittered, 2, retryable, () => 0)).toBe(5000);
    expect(nextRetryDelayMs(jittered, 2, retryable, () => 0.5)).toBe(7500);
    expect(nextRetryDelayMs(jittered, 2, retryable, () => 0.9999999)).toBe(10_000);
  });
});

describe("backoffOf", () => {
  it("maps a step's retry policy to the Task's backoff config", () => {
    expect(backoffOf({ ...policy, backoff: "fixed", jitter: true, maxDelayMs: 9 })).toEqual({
      kind: "fixed",
      initialDelayMs: 5000,
      maxDelayMs: 9,
      jitter: true,
    });
  });

  it("NO_RETRY allows exactly one attempt", () => {
    expect(NO_RETRY.maxAttempts).toBe(1);
  });
});

describe("misrouted attempts (a worker lacked the step's required capabilities)", () => {
  const refused: Failure = { code: "CAPABILITY_UNAVAILABLE", message: "the step requires gpu", retryable: true };
  it.each<[string, Failure | undefined, string, number, boolean, boolean]>([
    ["a worker's refusal is routed again at once", refused, "worker-1", 0, true, true],
    [`up to ${MAX_REROUTES} times`, refused, "worker-1", MAX_REROUTES - 1, true, true],
    ["then the retry policy decides", refused, "worker-1", MAX_REROUTES, true, false],
    ["not the engine's own conclusions", refused, "engine", 0, false, false],
    ["not a non-retryable one", { ...refused, retryable: false }, "worker-1", 0, false, false],
    ["not another failure", retryable, "worker-1", 0, false, false],
    ["not a success", undefined, "worker-1", 0, false, false],
  ])("%s", (_name, failure, workerId, reroutes, misrouted, again) => {
    expect(isMisrouted(failure, workerId)).toBe(misrouted);
    expect(reroutesAgain(failure, workerId, reroutes)).toBe(again);
  });
});
