import { hostname } from "node:os";
import { createNames, openBlobStoreLazily, type Logger, type Task } from "@flowmonkey/shared";
import { jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import type { AnyHandler } from "../sdk/define-handler.js";
import { copyOnWriteBlobs, copyOnWriteKv, recordingEvents, recordingPublisher, type EffectSink } from "./dry-run.js";
import { executeTask } from "./execute-task.js";
import type { Outcome } from "./outcome.js";

export interface LocalRunOptions {
  /** Reads only: the offloaded context and the checkpoint as the pool left it. */
  nc: NatsConnection;
  prefix: string;
  log: Logger;
  /** Progress, events and checkpoint writes the handler makes: recorded here, never sent. */
  onEffect: EffectSink;
}

/**
 * Runs one task's handler in this process with the worker's own runner (input validation,
 * context API, timeout), for `flowmonkey task replay`. Nothing reaches the mesh: no result is
 * published, progress and events go to `onEffect`, checkpoints are copy-on-write. The task's
 * vault should be empty (the engine empties it): no private key is given, so sealed secrets
 * would fail the run with VAULT_NOT_CONFIGURED rather than be opened on a laptop.
 */
export async function runTaskLocally(task: Task, handler: AnyHandler, options: LocalRunOptions): Promise<Outcome> {
  const names = createNames(options.prefix);
  const js = jetstream(options.nc);
  // The bucket the task's context was offloaded to (its region's), else its region's.
  const realBlobs = openBlobStoreLazily(js, task.contextRef?.bucket ?? names.regionBuckets.blobs(task.metadata.region));
  const checkpointsKv = await new Kvm(js).open(names.buckets.checkpoints, { allow_direct: true }).catch(() => undefined);
  const blobs = copyOnWriteBlobs(realBlobs);
  const running = executeTask(
    task,
    handler,
    {
      workerId: `replay@${hostname()}`,
      region: task.metadata.region,
      log: options.log,
      progress: { nc: recordingPublisher(options.onEffect), subjects: names.subjects, kv: undefined, minIntervalMs: 0 },
      checkpoints: { kv: copyOnWriteKv(checkpointsKv, options.onEffect), blobs },
      // Offloaded contexts are read from the real bucket (reads only; the copy-on-write view passes them through).
      blobs,
      js: recordingEvents(options.onEffect),
      tier: "small",
    },
    { working: () => undefined, deliveryCount: 1 },
  );
  return running.outcome;
}
