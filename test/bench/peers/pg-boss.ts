/**
 * pg-boss as a peer of the mesh in `npm run bench`: the same 3 sequential echo steps per flow
 * as a 3-queue chain on PostgreSQL (its own fresh database), each step's handler sending the
 * next step's job. pg-boss 10 (the newest that runs on Node 20; 12 needs Node 22) polls at
 * 0.5 s at best but wakes a worker of the same process at once when a job is sent, so its
 * workers run in this process, 4 per queue with batches of 64 — its most favourable setup.
 */
import PgBoss from "pg-boss";
import type { PeerSystem } from "./bullmq.js";

const STEPS = 3;
const queue = (step: number) => `bench-s${step}`;

export async function startPgBoss(databaseUrl: string, workersPerQueue = 4, batchSize = 64): Promise<PeerSystem> {
  const boss = new PgBoss({ connectionString: databaseUrl, max: 10, supervise: false, schedule: false });
  boss.on("error", () => undefined);
  await boss.start();
  for (let step = 1; step <= STEPS; step++) await boss.createQueue(queue(step));
  // Workers of each queue, woken right after a job is queued for them (pg-boss polls otherwise).
  const workers = new Map<number, string[]>();
  const wake = (step: number) => {
    for (const id of workers.get(step) ?? []) boss.notifyWorker(id);
  };
  const system: PeerSystem = {
    pids: {},
    onDone: () => undefined,
    start: async (id) => {
      await boss.send(queue(1), { id });
      wake(1);
    },
    async close() {
      await boss.stop({ graceful: false, wait: true });
    },
  };
  for (let step = 1; step <= STEPS; step++) {
    const ids: string[] = [];
    for (let w = 0; w < workersPerQueue; w++) {
      const id = await boss.work<{ id: string }>(queue(step), { batchSize, pollingIntervalSeconds: 0.5 }, async (jobs) => {
        if (step < STEPS) {
          await boss.insert(jobs.map((job) => ({ name: queue(step + 1), data: job.data })));
          wake(step + 1);
          return;
        }
        for (const job of jobs) system.onDone(job.data.id, true);
      });
      ids.push(id);
    }
    workers.set(step, ids);
  }
  return system;
}
