import { describe, expect, it } from "vitest";
import { CircuitBreakers, isInfrastructureFailure } from "../../src/scheduler/circuit-breakers.js";

const LANE = "eu-west-1/encode";
const down = { code: "UNAVAILABLE", message: "db down", retryable: true };
const no = { code: "CARD_DECLINED", message: "declined", retryable: false };

function breakers() {
  let now = 1_000_000;
  const b = new CircuitBreakers({ windowMs: 10_000, minResults: 4, failureRatio: 0.5, coolDownMs: 5000 }, () => now);
  return { b, advance: (ms: number) => (now += ms) };
}

describe("circuit breakers", () => {
  it("counts errors and infrastructure codes, not the handler's own decisions", () => {
    expect(isInfrastructureFailure("error", down)).toBe(true);
    expect(isInfrastructureFailure("failure", down)).toBe(true);
    expect(isInfrastructureFailure("failure", { ...down, code: "TASK_TIMEOUT" })).toBe(true);
    expect(isInfrastructureFailure("failure", no)).toBe(false);
    expect(isInfrastructureFailure("success")).toBe(false);
  });

  it("stays closed below the minimum number of results or the ratio", () => {
    const { b } = breakers();
    b.record(LANE, "failure", down);
    expect(b.holdFor(LANE)).toBe(0); // 1 result: too few to judge
    for (let i = 0; i < 5; i++) b.record(LANE, "success");
    b.record(LANE, "failure", down);
    b.record(LANE, "failure", down);
    expect(b.holdFor(LANE)).toBe(0); // 3 of 8
    expect(b.list()).toEqual([{ lane: LANE, state: "closed", results: 8, failures: 3 }]);
  });

  it("opens at the ratio, holds one probe until the cool-down and the rest a cool-down longer", () => {
    const { b, advance } = breakers();
    for (let i = 0; i < 4; i++) b.record(LANE, "failure", down);
    expect(b.list()[0]).toMatchObject({ state: "open" });
    advance(1000);
    expect(b.holdFor(LANE)).toBe(4000); // the probe
    expect(b.holdFor(LANE)).toBe(9000);
    expect(b.holdFor("eu-west-1/other")).toBe(0);
  });

  it("closes when the probe succeeds, opens again when it fails", () => {
    const { b, advance } = breakers();
    for (let i = 0; i < 4; i++) b.record(LANE, "error", down);
    advance(5000);
    expect(b.list()[0]).toMatchObject({ state: "half-open" });
    expect(b.holdFor(LANE)).toBe(0); // probe goes now
    expect(b.holdFor(LANE)).toBe(5000);
    b.record(LANE, "failure", down);
    expect(b.list()[0]).toMatchObject({ state: "open" });
    advance(5000);
    expect(b.holdFor(LANE)).toBe(0);
    b.record(LANE, "success");
    expect(b.holdFor(LANE)).toBe(0);
    expect(b.list()).toEqual([]);
  });

  it("forgets failures older than the window", () => {
    const { b, advance } = breakers();
    for (let i = 0; i < 3; i++) b.record(LANE, "failure", down);
    advance(11_000);
    b.record(LANE, "failure", down);
    expect(b.list()).toEqual([{ lane: LANE, state: "closed", results: 1, failures: 1 }]);
  });
});
