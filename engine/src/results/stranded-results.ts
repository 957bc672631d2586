import type { JetStreamManager } from "@nats-io/jetstream";
import { abortableDelay, toError, type Logger, type Subjects } from "@flowmonkey/shared";
import type { ResultToApply } from "./apply-result.js";
import { readResult } from "./read-result.js";

export interface StrandedResultsOptions {
  jsm: JetStreamManager;
  /** FM_RESULTS: a work queue, so an acknowledged result is deleted from it. */
  stream: string;
  /** The engine's durable consumer of it. */
  consumer: string;
  /** Applies results the consumer never delivered (the result processor's own apply: once per attempt). */
  apply(results: ResultToApply[]): Promise<void>;
  log: Logger;
  subjects: Subjects;
  maxMessageBytes: number;
  /** @default 10_000 */
  intervalMs?: number;
}

/** Sequences probed per check at most (a stranded result is rare; the probe must stay cheap). */
const MAX_PROBES = 2000;

/**
 * Finds results left in FM_RESULTS below the engine consumer's ack floor, and applies them.
 *
 * In a healthy work queue nothing is stored at or below the ack floor: acknowledging deletes.
 * After the hub node leading FM_RESULTS or its consumer was SIGKILLed, nats-server 2.9.10 was
 * seen (about one run in seven of test/failover/hub-cluster-client-node.test.ts) to move the
 * consumer's ack floor past 1–3 results it never delivered: they stayed stored, unseen by the
 * consumer, and their steps waited for an attempt timeout. Every `intervalMs` this compares the
 * stream with the consumer (two info requests); a result found below the floor at two checks in
 * a row — not one whose deletion is merely in flight — is applied (applying is idempotent per
 * attempt) and then deleted.
 */
export function watchStrandedResults(o: StrandedResultsOptions): { stop(): Promise<void> } {
  const abort = new AbortController();
  let suspects = new Set<number>();

  async function check(): Promise<void> {
    const [stream, consumer] = await Promise.all([o.jsm.streams.info(o.stream), o.jsm.consumers.info(o.stream, o.consumer)]);
    const floor = consumer.ack_floor.stream_seq;
    if (stream.state.messages === 0 || stream.state.first_seq > floor) {
      suspects = new Set();
      return;
    }
    const below: number[] = [];
    const last = Math.min(floor, stream.state.first_seq + MAX_PROBES - 1);
    for (let seq = stream.state.first_seq; seq <= last; seq++) {
      if (await o.jsm.streams.getMessage(o.stream, { seq })) below.push(seq);
    }
    const stranded = below.filter((seq) => suspects.has(seq));
    suspects = new Set(below.filter((seq) => !suspects.has(seq)));
    if (stranded.length === 0) return;
    const results: ResultToApply[] = [];
    for (const seq of stranded) {
      const stored = await o.jsm.streams.getMessage(o.stream, { seq });
      if (!stored) continue;
      try {
        // Read as the consumer reads it: a stranded result is no more trusted than a delivered one.
        const result = readResult(stored.data, stored.subject, o);
        results.push(result);
        o.log.warn(
          { executionId: result.executionId, taskId: result.taskId, stepId: result.stepId, attempt: result.attempt, streamSeq: seq, ackFloor: floor },
          "result stranded below its consumer's ack floor (never delivered); applying it",
        );
      } catch (err) {
        o.log.warn({ err: toError(err), streamSeq: seq }, "stranded result unreadable; deleting it");
      }
    }
    if (results.length > 0) await o.apply(results);
    // Only once applied (and committed): a crash before this finds them again.
    for (const seq of stranded) await o.jsm.streams.deleteMessage(o.stream, seq, false).catch(() => undefined);
  }

  const loop = (async () => {
    while (await abortableDelay(o.intervalMs ?? 10_000, abort.signal)) {
      await check().catch((err: unknown) => o.log.debug({ err: toError(err), stream: o.stream }, "stranded-results check failed"));
    }
  })();
  return {
    async stop() {
      abort.abort();
      await loop;
    },
  };
}
