import { describe, expect, it } from "vitest";
import { loadWorkerConfig } from "../../src/config.js";

describe("worker config: per-pool heartbeat timeouts", () => {
  it("reads handler=ms pairs from FM_POOL_HEARTBEAT_TIMEOUTS, and the flag wins", () => {
    expect(loadWorkerConfig({ env: { FM_POOL_HEARTBEAT_TIMEOUTS: "delay=90000, echo=5000" } }).heartbeatTimeouts).toEqual({ delay: 90_000, echo: 5000 });
    expect(loadWorkerConfig({ env: { FM_POOL_HEARTBEAT_TIMEOUTS: "delay=90000" }, argv: ["--pool-heartbeat-timeouts", "echo=2000"] }).heartbeatTimeouts).toEqual({
      echo: 2000,
    });
    expect(loadWorkerConfig({ env: {} }).heartbeatTimeouts).toEqual({});
  });

  it.each(["delay", "delay=fast", "delay=500", "=1000"])("refuses %j with the variable's name", (value) => {
    expect(() => loadWorkerConfig({ env: { FM_POOL_HEARTBEAT_TIMEOUTS: value } })).toThrow(/FM_POOL_HEARTBEAT_TIMEOUTS|pool-heartbeat-timeouts/);
  });
});
