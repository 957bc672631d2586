/**
 * (b) The raw JetStream ceiling, main-process side. The "collector" plays the engine minus
 * Postgres: it consumes results and, for steps 1 and 2, publishes the next step's task; the
 * third result completes the flow. The worker runs in its own process (ceiling-worker-proc.ts),
 * as the mesh's does.
 */
import { jetstream, jetstreamManager, type ConsumerMessages } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { CEILING, ceilingTask, provisionCeiling, removeCeiling, type CeilingResult } from "./ceiling-protocol.js";
import { spawnChild, type ChildHandle } from "./child-host.js";
import type { FlowSystem } from "./driver.js";
import { wallNow } from "./stats.js";

export const STEPS = 3;

export interface CeilingSystem extends FlowSystem {
  readonly worker: ChildHandle;
  /** Dispatch → handler start (ms) of every task since the last reset. */
  takeDispatchSamples(): number[];
  close(): Promise<void>;
}

export async function startCeiling(nc: NatsConnection, natsUrl: string, concurrency: number): Promise<CeilingSystem> {
  const jsm = await jetstreamManager(nc);
  await removeCeiling(jsm);
  await provisionCeiling(jsm, concurrency);
  const js = jetstream(nc);
  const enc = new TextEncoder();
  const dec = new TextDecoder();
  let dispatch: number[] = [];
  let collectorError: Error | undefined;

  const publishTask = (executionId: string, step: number, input: unknown) => {
    const task = ceilingTask(executionId, step, input, wallNow());
    return js.publish(CEILING.tasksSubject, enc.encode(JSON.stringify(task)), { msgID: `${task.taskId}:1` });
  };

  const worker = await spawnChild("ceiling worker", "./ceiling-worker-proc.ts", { NATS_URL: natsUrl, BENCH_CONCURRENCY: String(concurrency) });
  let messages: ConsumerMessages | undefined;
  let loop: Promise<void> = Promise.resolve();
  try {
    const consumer = await js.consumers.get(CEILING.resultsStream, CEILING.collectorConsumer);
    messages = await consumer.consume({ max_messages: 1000 });
  } catch (err) {
    await worker.stop();
    throw err;
  }

  const system: CeilingSystem = {
    worker,
    onDone: () => undefined,
    start: (id) => publishTask(id, 1, { bench: id, i: 1 }),
    takeDispatchSamples() {
      const out = dispatch;
      dispatch = [];
      return out;
    },
    async close() {
      messages?.stop();
      await loop.catch(() => undefined);
      await worker.stop();
      await removeCeiling(jsm);
    },
  };

  const consumed = messages;
  loop = (async () => {
    for await (const msg of consumed) {
      const r = JSON.parse(dec.decode(msg.data)) as CeilingResult;
      msg.ack();
      dispatch.push(r.d);
      if (r.step < STEPS) {
        publishTask(r.executionId, r.step + 1, r.output).catch((err: unknown) => {
          system.onDone(r.executionId, false, `publishing step ${r.step + 1} failed: ${(err as Error).message}`);
        });
      } else {
        system.onDone(r.executionId, true);
      }
    }
  })().catch((err: unknown) => {
    collectorError = err as Error;
    process.stderr.write(`ceiling collector stopped: ${collectorError.message}\n`);
  });
  return system;
}
