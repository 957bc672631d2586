import { encode, type Logger, type Progress, STEP_KEYS, type Subjects, toError } from "@flowmonkey/shared";
import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import type { ProgressApi } from "../sdk/handler-context.js";

/** Where progress goes; one per worker, shared by its tasks. */
export interface ProgressSink {
  /** Only publish is used: a local replay passes a recorder instead of a connection. */
  nc: Pick<NatsConnection, "publish">;
  subjects: Subjects;
  /** The progress bucket; undefined when it could not be opened (live updates still flow). */
  kv: KV | undefined;
  /** At most one update per this many ms and task (default PROGRESS_MIN_INTERVAL_MS; 0: every update). */
  minIntervalMs?: number;
}

export interface TaskProgress extends ProgressApi {
  /** Sends a held-back update at once and stops the throttle timer; called when the task settles. */
  finish(): void;
}

/** At most one update per this many ms and task: dashboards need no more, and each one is a KV write. */
export const PROGRESS_MIN_INTERVAL_MS = 100;

export interface ProgressIds {
  executionId: string;
  stepId: string;
  taskId: string;
  attempt: number;
}

/**
 * `region`: the worker's; the bucket key starts with it (STEP_KEYS) and so does the live subject
 * (`fm.progress.~<region>.<executionId>.<stepId>`): a region's workers may write only their region's.
 */
export function createTaskProgress(sink: ProgressSink, region: string, ids: ProgressIds, working: () => void, log: () => Logger): TaskProgress {
  const subject = sink.subjects.regionProgress(region, ids.executionId, ids.stepId);
  const key = STEP_KEYS.key(region, ids.executionId, ids.stepId);
  let lastSentAt = 0;
  let held: Progress | undefined;
  let timer: NodeJS.Timeout | undefined;
  let done = false;
  let lastPercent = 0;
  let estimatedCompletion: string | undefined;

  const send = (progress: Progress): Promise<void> => {
    lastSentAt = Date.now();
    held = undefined;
    const data = encode(progress);
    try {
      working();
      sink.nc.publish(subject, data);
    } catch (thrown) {
      log().debug({ err: toError(thrown) }, "progress publish failed");
    }
    if (!sink.kv) return Promise.resolve();
    return sink.kv.put(key, data).then(
      () => undefined,
      (thrown: unknown) => log().debug({ err: toError(thrown) }, "progress bucket write failed"),
    );
  };
  const flushHeld = () => {
    timer = undefined;
    if (held) void send(held);
  };

  return {
    update(percent, message) {
      if (typeof percent !== "number" || Number.isNaN(percent)) throw new TypeError("progress.update: percent must be a number");
      if (done) return Promise.resolve();
      lastPercent = Math.min(100, Math.max(0, percent));
      const progress: Progress = {
        ...ids,
        percent: lastPercent,
        ...(message === undefined ? {} : { message: message.slice(0, 1024) }),
        ...(estimatedCompletion ? { estimatedCompletion } : {}),
        at: new Date().toISOString(),
      };
      const wait = lastSentAt + (sink.minIntervalMs ?? PROGRESS_MIN_INTERVAL_MS) - Date.now();
      if (progress.percent >= 100 || wait <= 0) {
        if (timer) clearTimeout(timer);
        timer = undefined;
        return send(progress);
      }
      // Too soon: hold the latest and send it when the interval is up.
      held = progress;
      timer ??= setTimeout(flushHeld, wait);
      return Promise.resolve();
    },
    setEstimatedCompletion(at) {
      if (!(at instanceof Date) || Number.isNaN(at.getTime())) throw new TypeError("progress.setEstimatedCompletion: expected a valid Date");
      estimatedCompletion = at.toISOString();
      return this.update(lastPercent);
    },
    finish() {
      if (done) return;
      done = true;
      if (timer) clearTimeout(timer);
      flushHeld();
    },
  };
}

/**
 * Announces on the step's progress subject that this worker has started the attempt (percent
 * 0, "started", `at` when it started): views then show the step `running` instead of
 * `dispatched`, and live dashboards see it start. One core publish, no bucket write; only for
 * runs that last (execute-task.ts, STARTED_ANNOUNCEMENT_DELAY_MS).
 */
export function announceStarted(sink: ProgressSink, region: string, ids: ProgressIds, log: Logger, startedAt = Date.now()): void {
  const started: Progress = { ...ids, percent: 0, message: "started", at: new Date(startedAt).toISOString() };
  try {
    sink.nc.publish(sink.subjects.regionProgress(region, ids.executionId, ids.stepId), encode(started));
  } catch (thrown) {
    log.debug({ err: toError(thrown) }, "started announcement failed");
  }
}
