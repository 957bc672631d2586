import { toError } from "../errors/coerce.js";

export interface Batcher<T> {
  push(item: T): void;
  /** Items queued or being processed. */
  readonly pending: number;
  /** Resolves when everything pushed so far has been processed. */
  idle(): Promise<void>;
}

export interface BatcherOptions<T> {
  maxBatch: number;
  /** Batches processed at the same time (overlaps one batch's I/O with the next one's CPU). */
  concurrency?: number;
  onError: (err: Error, items: T[]) => void;
}

/**
 * Group commit: items pushed while batches are being processed form the next batch. One item
 * alone goes through at once (no added latency when idle); under load, batches grow up to
 * maxBatch, so one database transaction carries many messages.
 */
export function createBatcher<T>(process: (items: T[]) => Promise<void>, options: BatcherOptions<T>): Batcher<T> {
  const concurrency = options.concurrency ?? 1;
  const queue: T[] = [];
  let running = 0;
  let inFlight = 0;
  let scheduled = false;
  let waiters: Array<() => void> = [];

  const runOne = async (items: T[]) => {
    try {
      await process(items);
    } catch (thrown) {
      options.onError(toError(thrown), items);
    }
    running--;
    inFlight -= items.length;
    pump();
  };

  const pump = () => {
    while (running < concurrency && queue.length > 0) {
      const items = queue.splice(0, options.maxBatch);
      running++;
      inFlight += items.length;
      void runOne(items);
    }
    if (running === 0 && queue.length === 0 && waiters.length > 0) {
      const w = waiters;
      waiters = [];
      for (const resolve of w) resolve();
    }
  };

  return {
    push(item) {
      queue.push(item);
      // Start on the next microtask so that items arriving in the same tick join the batch.
      if (!scheduled && running < concurrency) {
        scheduled = true;
        queueMicrotask(() => {
          scheduled = false;
          pump();
        });
      }
    },
    get pending() {
      return queue.length + inFlight;
    },
    idle() {
      return running === 0 && queue.length === 0 ? Promise.resolve() : new Promise((resolve) => waiters.push(resolve));
    },
  };
}
