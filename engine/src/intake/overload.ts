import type { JetStreamManager } from "@nats-io/jetstream";
import { toError, type Logger } from "@flowmonkey/shared";

/** Overloaded from this share of the task queue limit on, and again accepting below the lower one. */
export const HIGH_WATER = 0.9;
export const LOW_WATER = 0.8;

export interface OverloadGauge {
  readonly overloaded: boolean;
  /** Called on every change, with the new state. */
  onChange(listener: (overloaded: boolean) => void): void;
  stop(): void;
}

/**
 * Watches the task stream's depth against its limit (`max_msgs`, discard new). Past the high
 * water mark the engine stops taking new starts: request/reply starts are refused with
 * OVERLOADED, and starts published to FM_FLOWS wait there unconsumed. Below the low water mark
 * it takes them again. The gap between the marks keeps it from flapping.
 */
export function watchTaskQueue(options: { jsm: JetStreamManager; stream: string; limit: number; intervalMs: number; log: Logger }): OverloadGauge {
  const { jsm, stream, limit, log } = options;
  const listeners: Array<(overloaded: boolean) => void> = [];
  let overloaded = false;

  const check = async () => {
    const depth = (await jsm.streams.info(stream)).state.messages;
    const next = overloaded ? depth >= limit * LOW_WATER : depth >= limit * HIGH_WATER;
    if (next === overloaded) return;
    overloaded = next;
    if (next) log.warn({ stream, depth, limit }, "task queue nearly full: refusing new starts until it drains");
    else log.info({ stream, depth, limit }, "task queue drained: taking new starts again");
    for (const listener of listeners) listener(next);
  };
  const timer = setInterval(() => {
    check().catch((err: unknown) => log.debug({ err: toError(err), stream }, "task queue depth check failed"));
  }, options.intervalMs);
  timer.unref();

  return {
    get overloaded() {
      return overloaded;
    },
    onChange(listener) {
      listeners.push(listener);
    },
    stop() {
      clearInterval(timer);
    },
  };
}
