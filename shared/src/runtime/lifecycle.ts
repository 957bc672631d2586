import { toError } from "../errors/coerce.js";

/** Every long-running component: start once, drain (finish in-flight work), close, and say when it is done. */
export interface Service {
  start(): Promise<void>;
  /** Stop taking new work and finish what is in flight, up to the deadline. */
  drain(deadlineMs?: number): Promise<void>;
  close(): Promise<void>;
  /** Resolves (never rejects) when the service has closed, with the error that closed it, if any. */
  closed(): Promise<Error | undefined>;
}

export type Release = () => Promise<void> | void;

/**
 * Resources released last-in-first-out; every release runs even when an earlier one fails,
 * and the first failure is rethrown at the end.
 */
export class Releasers {
  readonly #stack: Array<{ name: string; release: Release }> = [];

  add(name: string, release: Release): void {
    this.#stack.push({ name, release });
  }

  async releaseAll(onError?: (name: string, err: Error) => void): Promise<void> {
    let first: Error | undefined;
    while (this.#stack.length > 0) {
      const { name, release } = this.#stack.pop()!;
      try {
        await release();
      } catch (thrown) {
        const err = toError(thrown);
        onError?.(name, err);
        first ??= err;
      }
    }
    if (first) throw first;
  }
}

/** Memoizes a one-shot async operation (start, close) so that calling it twice is harmless. */
export function once<T>(fn: () => Promise<T>): () => Promise<T> {
  let promise: Promise<T> | undefined;
  return () => (promise ??= fn());
}

/** A promise with its resolve function exposed; for closed() and similar signals. */
export function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** Sleeps, but wakes early (resolving false) when the signal aborts. */
export function abortableDelay(ms: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(false);
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve(true);
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
