/**
 * The stranded-results sweep against a real nats-server. A work queue never keeps a message at
 * or below its consumer's ack floor, so the state nats-server 2.9.10 was seen to leave behind
 * after a hub node died (results stored but below the floor, never delivered) cannot be made
 * with a work queue on purpose; a limits-retention stream, whose acked messages stay stored,
 * makes exactly that state: stored, at or below the ack floor.
 */
import { connect } from "@nats-io/transport-node";
import { AckPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { describe, expect, it } from "vitest";
import { createSubjects, encode, silentLogger, type TaskResult } from "@flowmonkey/shared";
import { watchStrandedResults } from "../../src/results/stranded-results.js";
import { uniquePrefix, useNatsServer } from "../../../test/support/nats.js";
import { waitFor } from "../../../test/support/wait.js";

const nats = useNatsServer();

const resultOf = (n: number): TaskResult => {
  const at = new Date().toISOString();
  return { taskId: `x${n}/a`, executionId: `x${n}`, stepId: "a", attempt: 1, outcome: "success", output: { n }, metrics: { startedAt: at, completedAt: at, durationMs: 1, workerId: "w", region: "us-east-1" } };
};

describe("stranded results", () => {
  it("applies and deletes results stored below the consumer's ack floor, and leaves the rest alone", async () => {
    const nc = await connect({ servers: nats.url });
    const stop: Array<() => Promise<void>> = [];
    try {
      const prefix = uniquePrefix();
      const stream = `${prefix.toUpperCase()}_RESULTS`;
      const jsm = await jetstreamManager(nc);
      const subjects = createSubjects(prefix);
      await jsm.streams.add({ name: stream, subjects: [subjects.resultsAll] });
      await jsm.consumers.add(stream, { durable_name: "engine", ack_policy: AckPolicy.Explicit });
      const js = jetstream(nc);
      for (const n of [1, 2, 3]) await js.publish(subjects.results("us-east-1"), encode(resultOf(n)));
      // The consumer takes all three and acknowledges the first two: the floor is at 2, and
      // (limits retention) both stay stored — as if a work queue had failed to delete them.
      const messages = await (await js.consumers.get(stream, "engine")).fetch({ max_messages: 3, expires: 2000 });
      for await (const m of messages) {
        if (m.seq <= 2) await m.ackAck();
        if (m.seq === 3) break;
      }
      expect((await jsm.consumers.info(stream, "engine")).ack_floor.stream_seq).toBe(2);

      const applied: string[] = [];
      const sweep = watchStrandedResults({
        jsm,
        stream,
        consumer: "engine",
        log: silentLogger(),
        subjects,
        maxMessageBytes: 1024 * 1024,
        intervalMs: 100,
        async apply(results) {
          applied.push(...results.map((r) => r.taskId));
        },
      });
      stop.push(() => sweep.stop());
      await waitFor(async () => (await jsm.streams.info(stream)).state.messages === 1, { timeoutMs: 10_000, message: "the two stranded results deleted" });
      expect(applied.sort()).toEqual(["x1/a", "x2/a"]);
      // The one above the floor (delivered, not acknowledged) is the consumer's business.
      expect(await jsm.streams.getMessage(stream, { seq: 3 })).toBeTruthy();
    } finally {
      for (const s of stop) await s();
      await nc.close();
    }
  });
});
