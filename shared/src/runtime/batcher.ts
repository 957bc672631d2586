import { toError } from "../errors/coerce.js";

export interface Batcher<T> {
  push(item: T): void;
  /** Items queued or being processed. */
  readonly pending: number;
  /** Resolves when everything pushed so far has been processed. */
  idle(): Promise<void>;
}

/**
 * Group commit: items pushed while a batch is being processed form the next batch. One item
 * alone goes through at once (no added latency when idle); under load, batches grow up to
 * maxBatch, so one database transaction carries many messages.
 */
export function createBatcher<T>(
  process: (items: T[]) => Promise<void>,
  options: { maxBatch: number; onError: (err: Error, items: T[]) => void },
): Batcher<T> {
  const queue: T[] = [];
  let running = false;
  let inFlight = 0;
  let waiters: Array<() => void> = [];

  const run = async () => {
    running = true;
    while (queue.length > 0) {
      const items = queue.splice(0, options.maxBatch);
      inFlight = items.length;
      try {
        await process(items);
      } catch (thrown) {
        options.onError(toError(thrown), items);
      }
      inFlight = 0;
    }
    running = false;
    const w = waiters;
    waiters = [];
    for (const resolve of w) resolve();
  };

  return {
    push(item) {
      queue.push(item);
      // Start on the next microtask so that items arriving in the same tick join the batch.
      if (!running) {
        running = true;
        queueMicrotask(() => void run());
      }
    },
    get pending() {
      return queue.length + inFlight;
    },
    idle() {
      return !running && queue.length === 0 ? Promise.resolve() : new Promise((resolve) => waiters.push(resolve));
    },
  };
}
