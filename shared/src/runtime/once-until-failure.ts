/**
 * `load`, run on the first call and its promise shared by every call after — until it rejects:
 * a failed load is not remembered, so the next call tries again (a bucket that was not there yet,
 * a blob read cut by a reconnect).
 */
export function onceUntilFailure<T>(load: () => Promise<T>): () => Promise<T> {
  let pending: Promise<T> | undefined;
  return () =>
    (pending ??= load().catch((err: unknown) => {
      pending = undefined;
      throw err;
    }));
}
