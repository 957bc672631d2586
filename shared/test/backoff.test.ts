import { describe, expect, it } from "vitest";
import { backoffDelayMs } from "../src/runtime/backoff.js";
import type { BackoffConfig } from "../src/protocol/messages/task.js";

const exponential: BackoffConfig = { kind: "exponential", initialDelayMs: 5000, maxDelayMs: 300_000, jitter: false };
const fixed: BackoffConfig = { kind: "fixed", initialDelayMs: 5000, maxDelayMs: 300_000, jitter: false };
const never = () => {
  throw new Error("random() must not be called without jitter");
};

describe("backoffDelayMs without jitter", () => {
  it.each<[string, BackoffConfig, number, number]>([
    ["exponential, after attempt 1", exponential, 1, 5000],
    ["exponential, after attempt 2", exponential, 2, 10_000],
    ["exponential, after attempt 3", exponential, 3, 20_000],
    ["exponential, after attempt 6", exponential, 6, 160_000],
    ["exponential, capped after attempt 7", exponential, 7, 300_000],
    ["exponential, capped far out", exponential, 1000, 300_000],
    ["exponential, attempt 0 is treated as the first", exponential, 0, 5000],
    ["exponential, cap below the first delay", { ...exponential, maxDelayMs: 1000 }, 1, 1000],
    ["exponential, zero initial delay", { ...exponential, initialDelayMs: 0 }, 5, 0],
    ["fixed, after attempt 1", fixed, 1, 5000],
    ["fixed, after attempt 10", fixed, 10, 5000],
    ["fixed, capped", { ...fixed, maxDelayMs: 2000 }, 3, 2000],
  ])("%s → %i attempt → %i ms", (_name, config, attempt, expected) => {
    expect(backoffDelayMs(config, attempt, never)).toBe(expected);
  });

  it("5 s → 10 s → 20 s, as DESIGN.md's retry example says", () => {
    expect([1, 2, 3].map((a) => backoffDelayMs(exponential, a))).toEqual([5000, 10_000, 20_000]);
  });

  it("never overflows to Infinity or NaN", () => {
    const huge = { ...exponential, maxDelayMs: Number.MAX_SAFE_INTEGER };
    const delay = backoffDelayMs(huge, 10_000);
    expect(Number.isFinite(delay)).toBe(true);
    expect(delay).toBeGreaterThan(0);
  });
});

describe("backoffDelayMs with jitter", () => {
  const jittered: BackoffConfig = { ...exponential, jitter: true };

  it.each<[number, number, number]>([
    // random, attempt, expected: uniform in [delay/2, delay]
    [0, 1, 2500],
    [0.5, 1, 3750],
    [0.999999, 1, 5000],
    [0, 3, 10_000],
    [0.25, 3, 12_500],
    [0, 100, 150_000],
    [0.999999, 100, 300_000],
  ])("random()=%d after attempt %i → %i ms", (r, attempt, expected) => {
    expect(backoffDelayMs(jittered, attempt, () => r)).toBe(expected);
  });

  it("stays within [delay/2, delay] for any random value", () => {
    for (let attempt = 1; attempt <= 10; attempt++) {
      const full = backoffDelayMs(exponential, attempt);
      for (let i = 0; i <= 100; i++) {
        const d = backoffDelayMs(jittered, attempt, () => i / 101);
        expect(d).toBeGreaterThanOrEqual(Math.floor(full / 2));
        expect(d).toBeLessThanOrEqual(full);
      }
    }
  });

  it("applies to fixed backoff too", () => {
    expect(backoffDelayMs({ ...fixed, jitter: true }, 4, () => 0)).toBe(2500);
  });
});
