/**
 * Losing the hub node every client is connected to: the engine's and the workers' connections
 * fail over to the other two nodes while 200 flows run, and the streams and consumers that node
 * led elect new leaders. All flows complete, each step once, none dead-lettered.
 *
 * This once stalled for ~45 s: the engine's consume() loops, answered "409 Leadership Change",
 * waited for two missed idle heartbeats of a 30 s pull (now a 4 s pull, ENGINE_PULL_EXPIRES_MS);
 * and workers gave finished tasks back while the results stream had no leader, which used up
 * their deliveries (now the result is retried in place while the task keeps its heartbeat).
 *
 * Run by `npm run test:hub-failover`, not by `npm test` or CI: in about 1 run of 6 on
 * nats-server 2.9.10 it fails — a stream left without a leader for over 30 s; results left in
 * the FM_RESULTS work queue below its consumer's ack floor (now applied by the engine's
 * stranded-results check); once, a task whose deliveries ran out (DELIVERIES_EXHAUSTED) while
 * its result could not be stored — not yet explained. The failure message prints the streams'
 * and consumers' state to tell which.
 */
import { jetstreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startHubCluster, stepTally, type HubCluster } from "../support/hub-cluster.js";
import { useTestDatabase } from "../support/postgres.js";
import { ROLES } from "../support/topology.js";
import { waitFor } from "../support/wait.js";

const FLOWS = 200;
const KILL_AT = FLOWS / 4;
const pg = useTestDatabase();
let hub: HubCluster;

beforeAll(async () => {
  hub = await startHubCluster(pg.url);
}, 60_000);
afterAll(() => hub?.close());

describe("clustered hub, losing the clients' node", () => {
  it(`completes ${FLOWS} flows, each step once, when the node the engine and workers are on is SIGKILLed`, async () => {
    const t0 = Date.now();
    let killedAt = 0;
    let completedAtKill = 0;
    for (let i = 0; i < FLOWS; i++) {
      await hub.publishStart(i);
      if (i === KILL_AT) {
        completedAtKill = await hub.count("completed");
        killedAt = Date.now();
        hub.nodes[0]!.kill("SIGKILL");
      }
    }
    // The first completion after the kill: how long the mesh stood still.
    let resumedAt = 0;
    // On a timeout, say where the flows stood (statuses, task states, errors): a bare timeout says nothing.
    const standing = async () => {
      const q = async (sql: string) => JSON.stringify((await hub.engine.db.query(sql)).rows);
      const jsm = await jetstreamManager(await hub.connectAs(ROLES.engine));
      const streams: string[] = [];
      for (const name of ["FM_TASKS", "FM_RESULTS", "FM_FLOWS"]) {
        const info = await jsm.streams.info(name).catch(() => undefined);
        const consumers: string[] = [];
        for await (const c of jsm.consumers.list(name)) {
          consumers.push(`${c.name}{pending ${c.num_pending}, ackPending ${c.num_ack_pending}, waiting ${c.num_waiting}, redelivered ${c.num_redelivered}, delivered ${c.delivered.stream_seq}, ackFloor ${c.ack_floor.stream_seq}, leader ${c.cluster?.leader}}`);
        }
        streams.push(`${name}{msgs ${info?.state.messages}, first ${info?.state.first_seq}, last ${info?.state.last_seq}, leader ${info?.cluster?.leader}} ${consumers.join(" ")}`);
      }
      return `executions ${await q("SELECT status, count(*)::int AS n FROM executions GROUP BY status")}; tasks ${await q("SELECT status, count(*)::int AS n FROM tasks GROUP BY status")}; stuck ${await q("SELECT task_id, attempt, dispatched_at FROM tasks WHERE status = 'dispatched' LIMIT 5")}; outbox ${await q("SELECT count(*)::int AS n FROM outbox")}; errors ${await q("SELECT task_id, attempt, error->>'code' AS code FROM tasks WHERE error IS NOT NULL LIMIT 5")}; ${streams.join("; ")}`;
    };
    await waitFor(
      async () => {
        const done = await hub.count("completed");
        if (!resumedAt && done > completedAtKill) resumedAt = Date.now();
        return done === FLOWS;
      },
      // A bound on "stops nothing for longer than a leader election" that a loaded CI box still
      // meets; the stall this test was written for was ~45 s.
      { timeoutMs: 30_000, intervalMs: 100, message: `all ${FLOWS} flows to complete within 30 s of losing the clients' node` },
    ).catch(async (err: unknown) => {
      throw new Error(`${(err as Error).message}; ${await standing()}`, { cause: err });
    });
    console.info(
      `[regions] hub cluster, clients' node SIGKILLed at start ${KILL_AT}: first completion ${resumedAt - killedAt} ms after the kill, ` +
        `all ${FLOWS} completed ${Date.now() - killedAt} ms after it (${Date.now() - t0} ms after the first start)`,
    );
    expect(await stepTally(hub.engine)).toEqual({ executions: FLOWS, steps: 2 * FLOWS, retried: 0, failed: 0 });
    expect(await hub.count("failed")).toBe(0);
  }, 90_000);
});
