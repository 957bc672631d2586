import { describe, expect, it } from "vitest";
import { parseRateRules, RateLimits } from "../../src/scheduler/rate-limits.js";

const T0 = 1_000_000;

describe("rate limits", () => {
  it("parses lane rules with wildcards and refuses bad ones, naming them", () => {
    expect(parseRateRules("us-east-1/http-request=50, */video-encode=2.5")).toEqual([
      { region: "us-east-1", handler: "http-request", perSecond: 50 },
      { region: "*", handler: "video-encode", perSecond: 2.5 },
    ]);
    expect(parseRateRules("")).toEqual([]);
    expect(() => parseRateRules("us-east-1/echo")).toThrow(/"us-east-1\/echo" is not/);
    expect(() => parseRateRules("us-east-1/echo=0")).toThrow(/is not/);
  });

  it("lets one second's worth go at once, then spaces tasks at the rate", () => {
    const limits = new RateLimits({ rules: [{ region: "*", handler: "echo", perSecond: 10 }] }, () => T0);
    const at = Array.from({ length: 14 }, () => limits.reserve("us-east-1", "echo", undefined, T0) - T0);
    expect(at.slice(0, 10)).toEqual(Array(10).fill(0));
    expect(at.slice(10)).toEqual([100, 200, 300, 400]);
    expect(limits.reserve("us-east-1", "other", undefined, T0)).toBe(T0); // no rule, no wait
    expect(limits.list()).toEqual([{ key: "*/echo", perSecond: 10 }, { key: "us-east-1/echo", perSecond: 10, heldUntil: new Date(T0 + 400).toISOString() }]);
  });

  it("keeps each tenant to its own rate per lane, and honours the lane rate as well", () => {
    const limits = new RateLimits({ rules: [{ region: "eu", handler: "send", perSecond: 4 }], tenantPerSecond: 2 }, () => T0);
    const a = [0, 1, 2].map(() => limits.reserve("eu", "send", "acme", T0) - T0);
    expect(a).toEqual([0, 0, 500]);
    // Another tenant is not behind acme's backlog, only within the lane's own rate.
    expect(limits.reserve("eu", "send", "globex", T0) - T0).toBe(0);
    expect(limits.reserve("eu", "send", "globex", T0) - T0).toBe(250);
  });

  it("never schedules before the task's own due time", () => {
    const limits = new RateLimits({ rules: [{ region: "*", handler: "*", perSecond: 1 }] }, () => T0);
    expect(limits.reserve("r", "h", undefined, T0 + 5000)).toBe(T0 + 5000);
  });
});
