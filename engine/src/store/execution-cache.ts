import type { ExecutionState } from "../scheduler/state.js";

/**
 * The states of running executions as this engine last committed them, each with its row version
 * (xmin). A result for a cached execution is decided without reading its row: the optimistic
 * write checks the version anyway (fm_check_versions), so a state another writer changed
 * meanwhile (another replica, a timeout, an operator) fails that write and is read afresh. On
 * the hot path this is the difference between one statement per result batch and two.
 *
 * Entries are taken, not read: a batch removes what it decides on and puts back only what it
 * committed, so a decision that fails (a conflict, an error) can never leave a half-changed state
 * behind. Ended executions are not kept (a result for one is only ever ignored).
 *
 * With replicas, consecutive results of one execution often go to different engines, and a
 * cached state is then stale more often than not; a stale hit costs a failed write. The cache
 * watches that: while most of its recent hits turned out stale it stands aside (every lookup
 * misses) and tries again later.
 */
export interface ExecutionCache {
  /**
   * Removes and answers the cached states of `ids` (a state is in one batch's hands at a time);
   * `contended` when another batch of this engine holds some of them now (a conflict between
   * the two is then no sign of a stale cache). The caller releases `ids` when its batch is over.
   */
  take(ids: readonly string[]): { states: Map<string, ExecutionState>; versions: Map<string, string>; contended: boolean };
  /** The batch that took these ids is over (committed or not). */
  release(ids: readonly string[]): void;
  /**
   * Keeps a state as committed at `version` (`size`: the written row's JSON length, to which its
   * input and labels — not rewritten by updates — are added); an ended or too large execution is dropped instead.
   */
  put(state: ExecutionState, version: string, size: number): void;
  /** Forgets these executions (written elsewhere, or their decision failed). */
  evict(ids: Iterable<string>): void;
  /** Reports how the hits of a batch fared: `stale` when the write found another version. */
  settle(hits: number, stale: boolean): void;
  readonly size: number;
  /** The kept rows' JSON length in all. */
  readonly totalSize: number;
}

export interface ExecutionCacheOptions {
  /** Executions kept at most (least recently committed dropped first). @default 10_000 */
  maxEntries?: number;
  /** Their rows' JSON, in characters, kept at most in all (a large context is held in full). @default 64 Mi */
  maxTotalSize?: number;
  /** A state whose row is larger than this is not kept (its next result reads it). @default 256 Ki */
  maxEntrySize?: number;
  /** Hits judged per window before deciding whether to stand aside. @default 200 */
  window?: number;
  /** Stale share of a window's hits at which the cache stands aside. @default 0.25 */
  maxStaleShare?: number;
  /** Lookups it then lets through to the database before trying again. @default 5_000 */
  standAside?: number;
}

const ENDED = new Set(["completed", "failed", "cancelled"]);

/** JSON lengths of inputs and labels, measured once per object (an execution keeps its objects from transition to transition). */
const measured = new WeakMap<object, number>();
function jsonLength(value: unknown): number {
  if (typeof value !== "object" || value === null) return value === undefined ? 0 : String(value).length + 2;
  let length = measured.get(value);
  if (length === undefined) {
    length = JSON.stringify(value).length;
    measured.set(value, length);
  }
  return length;
}

export function createExecutionCache(options: ExecutionCacheOptions = {}): ExecutionCache {
  const maxEntries = options.maxEntries ?? 10_000;
  const maxTotalSize = options.maxTotalSize ?? 64 * 1024 * 1024;
  const maxEntrySize = options.maxEntrySize ?? 256 * 1024;
  let totalSize = 0;
  const window = options.window ?? 200;
  const maxStaleShare = options.maxStaleShare ?? 0.25;
  const standAside = options.standAside ?? 5_000;
  // Map order is insertion order: re-inserting on put makes the first key the least recently committed.
  const entries = new Map<string, { state: ExecutionState; version: string; size: number }>();
  const remove = (id: string) => {
    const entry = entries.get(id);
    if (!entry) return undefined;
    entries.delete(id);
    totalSize -= entry.size;
    return entry;
  };
  let hits = 0;
  let stale = 0;
  let asideFor = 0;
  /** Ids some batch took and has not released yet. */
  const held = new Map<string, number>();

  return {
    take(ids) {
      const states = new Map<string, ExecutionState>();
      const versions = new Map<string, string>();
      let contended = false;
      for (const id of ids) {
        if (held.has(id)) contended = true;
        held.set(id, (held.get(id) ?? 0) + 1);
      }
      if (asideFor > 0) {
        asideFor--;
        return { states, versions, contended };
      }
      for (const id of ids) {
        const entry = remove(id);
        if (!entry) continue;
        states.set(id, entry.state);
        versions.set(id, entry.version);
      }
      return { states, versions, contended };
    },
    release(ids) {
      for (const id of ids) {
        const n = (held.get(id) ?? 1) - 1;
        if (n > 0) held.set(id, n);
        else held.delete(id);
      }
    },
    put(state, version, size) {
      remove(state.id);
      const total = size + jsonLength(state.input) + jsonLength(state.labels);
      if (ENDED.has(state.status) || total > maxEntrySize) return;
      entries.set(state.id, { state, version, size: total });
      totalSize += total;
      while (entries.size > maxEntries || totalSize > maxTotalSize) remove(entries.keys().next().value as string);
    },
    evict(ids) {
      for (const id of ids) remove(id);
    },
    settle(batchHits, wasStale) {
      if (batchHits === 0) return;
      hits += batchHits;
      if (wasStale) stale += batchHits;
      if (hits < window) return;
      if (stale / hits >= maxStaleShare) {
        asideFor = standAside;
        entries.clear();
        totalSize = 0;
      }
      hits = 0;
      stale = 0;
    },
    get size() {
      return entries.size;
    },
    get totalSize() {
      return totalSize;
    },
  };
}
