/**
 * The ceiling's worker, a child process: consume() tasks, "run" echo (output = input), publish
 * the result with a JetStream publish (awaiting its ack, de-duplicated by taskId like the mesh
 * worker), then ack the task. At most BENCH_CONCURRENCY tasks are unacked (the consumer's
 * max_ack_pending). Env: NATS_URL, BENCH_CONCURRENCY.
 */
import { jetstream } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { CEILING, type CeilingResult, type CeilingTask } from "./ceiling-protocol.js";
import { fatal, installFatalHandlers, serveChild } from "./child-side.js";
import { wallNow } from "./stats.js";

installFatalHandlers();
const url = process.env["NATS_URL"] ?? fatal(new Error("NATS_URL is not set"));
const concurrency = Number(process.env["BENCH_CONCURRENCY"] ?? "256");

const nc = await connect({ servers: url, name: "bench-ceiling-worker" });
const js = jetstream(nc);
const consumer = await js.consumers.get(CEILING.tasksStream, CEILING.workerConsumer);
const messages = await consumer.consume({ max_messages: concurrency });
const enc = new TextEncoder();
const dec = new TextDecoder();
let processed = 0;

const loop = (async () => {
  for await (const msg of messages) {
    const started = wallNow();
    const task = JSON.parse(dec.decode(msg.data)) as CeilingTask;
    const output = task.input;
    const completed = wallNow();
    const result: CeilingResult = {
      taskId: task.taskId,
      executionId: task.executionId,
      stepId: task.stepId,
      step: task.step,
      attempt: task.attempt,
      outcome: "success",
      output,
      metrics: {
        startedAt: new Date(started).toISOString(),
        completedAt: new Date(completed).toISOString(),
        durationMs: completed - started,
        workerId: "bench-ceiling",
        region: "us-east-1",
      },
      d: started - task.t,
    };
    js.publish(CEILING.resultsSubject, enc.encode(JSON.stringify(result)), { msgID: `${task.taskId}:${task.attempt}` }).then(
      () => {
        msg.ack();
        processed++;
      },
      (err: unknown) => {
        process.stderr.write(`result publish failed: ${(err as Error).message}\n`);
        msg.nak(1000);
      },
    );
  }
})();

serveChild({ concurrency }, { processed: () => ({ processed }) }, async () => {
  messages.stop();
  await loop.catch(() => undefined);
  await nc.drain();
});
