/**
 * A value read at most once per `ttlMs`, whoever asks: scrapes in a burst share one database
 * query, and concurrent callers share the one in flight. A failed read is not cached.
 */
export function cachedRead<T>(read: () => Promise<T>, ttlMs: number): () => Promise<T> {
  let value: { at: number; data: T } | undefined;
  let pending: Promise<T> | undefined;
  return async () => {
    if (value && Date.now() - value.at < ttlMs) return value.data;
    pending ??= read()
      .then((data) => {
        value = { at: Date.now(), data };
        return data;
      })
      .finally(() => (pending = undefined));
    return pending;
  };
}
