/**
 * Every binary ends within its drain grace on SIGTERM, whatever the state of its connections:
 * an engine and a worker whose NATS server is gone (seen alive 6 s after SIGTERM before).
 * Real processes (the built binaries), a real nats-server that is SIGKILLed under them.
 */
import { describe, expect, it } from "vitest";
import { useMeshProcesses } from "../chaos/support/processes.js";
import { uniquePrefix, useNatsServer } from "../support/nats.js";
import { useTestDatabase } from "../support/postgres.js";

const GRACE_MS = 1000;
// runService's own deadline is the grace plus 5 s to close; this leaves room for a loaded box.
const EXIT_WITHIN_MS = GRACE_MS + 5000 + 4000;

const nats = useNatsServer();
const pg = useTestDatabase();
const meshProcesses = useMeshProcesses();

describe("SIGTERM with the NATS server gone", () => {
  it("the engine and a worker exit within their grace instead of waiting for NATS forever", async () => {
    const mesh = meshProcesses({
      natsUrl: nats.url,
      databaseUrl: pg.url,
      prefix: uniquePrefix(),
      heartbeatTimeoutMs: 10_000,
      env: { FM_SHUTDOWN_GRACE_MS: String(GRACE_MS) },
    });
    const engine = await mesh.startEngine();
    const worker = await mesh.startWorker();

    nats.server.kill("SIGKILL");
    // Both have seen the connection drop (the client is now reconnecting, forever by default).
    await Promise.all([engine, worker].map((p) => p.waitForLog((l) => (l["nats"] as { status?: string } | undefined)?.status === "disconnect", { timeoutMs: 15_000, what: "a NATS disconnect" })));

    const started = Date.now();
    const [engineExit, workerExit] = await Promise.all([engine.kill("SIGTERM", EXIT_WITHIN_MS), worker.kill("SIGTERM", EXIT_WITHIN_MS)]);
    expect(Date.now() - started).toBeLessThan(EXIT_WITHIN_MS);
    // Ended by itself (an exit code), not by a signal it failed to handle.
    expect(engineExit.signal).toBeNull();
    expect(workerExit.signal).toBeNull();
    await nats.server.restart(); // the fixture stops it in afterAll
  });
});
