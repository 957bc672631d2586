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

describe("worker config: metrics listener", () => {
  it("is off unless FM_METRICS_PORT or --metrics-port is given, and binds to loopback by default", () => {
    expect(loadWorkerConfig({ env: {} }).metricsPort).toBeUndefined();
    expect(loadWorkerConfig({ env: { FM_METRICS_PORT: "9464" } })).toMatchObject({ metricsPort: 9464, metricsHost: "127.0.0.1" });
    expect(loadWorkerConfig({ env: { FM_METRICS_PORT: "9464" }, argv: ["--metrics-port", "0", "--metrics-host", "0.0.0.0"] })).toMatchObject({ metricsPort: 0, metricsHost: "0.0.0.0" });
  });

  it.each(["-1", "65536", "http", "9464.5"])("refuses FM_METRICS_PORT=%j", (value) => {
    expect(() => loadWorkerConfig({ env: { FM_METRICS_PORT: value } })).toThrow(/FM_METRICS_PORT|metrics-port/);
  });
});
