import type { ContextOffload } from "../context/offload.js";
import type { PayloadGuard } from "../outbox/payload-guard.js";
import type { Changes } from "../execution/changes.js";
import type { ExecutionState } from "../scheduler/state.js";
import { needsSealing, sealTaskSecrets } from "../vault/seal-pass.js";
import type { Vault } from "../vault/vault.js";
import { hasSqlState, type Db, type Queryable } from "./db.js";
import type { ExecutionCache } from "./execution-cache.js";
import { insertExecutions, lockExecutions, lockExecutionVersions, readExecutions } from "./executions.js";
import type { OutboxMessage } from "./outbox.js";
import { admitTenantTasks, needsAdmission } from "./tenant-lanes.js";
import { writeChanges, type Written } from "./write-changes.js";

/** How long the committing process holds its own outbox row before the sweep may publish it. */
export const OUTBOX_CLAIM_MS = 15_000;

/**
 * The engine's database with what every transition does to its outgoing tasks before they are
 * written: large contexts leave as blob references (engine.ts attaches it; tools and tests
 * that pass a bare Db send every context inline). Carried by the Db so that no caller of
 * transition() has to pass it along.
 */
export type TransitionDb = Db & { readonly contextOffload?: ContextOffload; readonly payloadGuard?: PayloadGuard; readonly executionCache?: ExecutionCache };

/** `db` with the context offload attached (a copy: the Db objects are plain method bags). */
export function withContextOffload(db: Db, contextOffload: ContextOffload): TransitionDb {
  return { ...db, contextOffload };
}

/**
 * `db` with the payload guard attached: every transition then commits only messages the server
 * takes (outbox/payload-guard.ts). Tools and tests that pass a bare Db commit what they are given.
 */
export function withPayloadGuard(db: TransitionDb, payloadGuard: PayloadGuard): TransitionDb {
  return { ...db, payloadGuard };
}

/**
 * `db` with the engine's cache of running executions attached: optimistic transitions then decide
 * on the states this process last committed instead of reading them (store/execution-cache.ts).
 */
export function withExecutionCache(db: TransitionDb, executionCache: ExecutionCache): TransitionDb {
  return { ...db, executionCache };
}

export interface Committed<T> {
  value: T;
  /** The row holding what must be published now, and its messages. */
  outbox?: { id: number; messages: OutboxMessage[] };
  /** Ids of the executions this transaction created (a duplicate start creates none). */
  created: ReadonlySet<string>;
  /** When the earliest delayed message (a retry) of this transaction is due. */
  nextDueAt?: Date;
}

/**
 * The one shape of every engine state change: lock the executions involved, let `decide`
 * change them in memory, then write the new states, task rows, rejections and outgoing
 * messages in the same transaction.
 */
/** What a committed transition answers: its value, the executions it created, its outbox row, its next retry. */
function committedOf<T>(value: T, out: Changes, created: ReadonlySet<string>, outbox: { id: number; messages: OutboxMessage[] } | undefined): Committed<T> {
  const due = out.delayedMessages().map((d) => d.notBefore.getTime());
  return {
    value,
    created,
    ...(outbox ? { outbox } : {}),
    ...(due.length > 0 ? { nextDueAt: new Date(Math.min(...due)) } : {}),
  };
}

/** An execution changed between the optimistic read and the write: decide again on fresh state. */
export class ExecutionConflictError extends Error {
  override readonly name = "ExecutionConflictError";
}

/** PostgreSQL's serialization_failure, raised by fm_check_versions (migration 0011). */
const isSerializationFailure = (err: unknown) => hasSqlState(err, "40001");

/**
 * The same state change, optimistically (the hot path: task results). The executions are read
 * without a lock and `decide` runs on them; then, when the changes need nothing but the write
 * itself (no new executions, no secrets to seal, no tenant lane to admit to), ONE statement
 * writes everything and checks that every changed execution is still the version read — one
 * round trip where the locked path takes five (BEGIN, lock, lookups, write, COMMIT). Otherwise
 * the locked path runs, after checking the versions under the lock. Either way a version that
 * changed meanwhile throws ExecutionConflictError and nothing is written: the caller decides
 * again with a fresh `out` (applyResults does).
 */
export async function transitionOptimistically<T>(
  db: TransitionDb,
  executionIds: string[],
  decide: (executions: Map<string, ExecutionState>, out: Changes, q: Queryable) => Promise<T>,
  out: Changes,
  vault?: Vault,
): Promise<Committed<T>> {
  const cache = db.executionCache;
  const ids = [...new Set(executionIds)];
  const { states, versions, contended } = cache ? cache.take(ids) : { states: new Map<string, ExecutionState>(), versions: new Map<string, string>(), contended: false };
  const hits = states.size;
  const cached = new Map(versions);
  let stale = false;
  try {
    if (hits < ids.length) {
      const read = await readExecutions(db, ids.filter((id) => !states.has(id)));
      for (const [id, state] of read.states) states.set(id, state);
      for (const [id, version] of read.versions) versions.set(id, version);
    }
    const value = await decide(states, out, db);
    // Cached states the decision left unchanged are checked too: an ignore or a rejection decided on a stale one must be decided again.
    const unchanged = new Map([...cached].filter(([id]) => !out.updated.has(id)));
    let written: Written;
    if (out.created.length === 0 && !needsSealing(out) && !needsAdmission(out)) {
      await db.contextOffload?.offloadTasks(out);
      await db.payloadGuard?.fit(out);
      written = await writeChanges(db, out, OUTBOX_CLAIM_MS, versions, undefined, unchanged);
    } else {
      written = await db.tx(async (q) => {
        const checked = [...new Set([...out.updated.keys(), ...unchanged.keys()])];
        const now = await lockExecutionVersions(q, checked);
        // A row that is gone (retention forgot an execution another engine ended) is as stale as one that changed.
        for (const id of checked) if (versions.get(id) !== now.get(id)) throw new ExecutionConflictError(`execution ${id} changed while its transition was decided`);
        return persist(q, out, vault, db.contextOffload, db.payloadGuard);
      });
    }
    // Committed: the states this batch changed go back at their new versions; the rest are read again when next needed.
    if (cache) for (const [id, state] of out.updated) {
      const version = written.versions.get(id);
      if (version) cache.put(state, version, written.sizes.get(id) ?? Infinity);
    }
    return committedOf(value, out, new Set<string>(), written.outbox);
  } catch (err) {
    // Taken entries are not put back: a state decide() changed but that was not committed must not be reused.
    stale = err instanceof ExecutionConflictError || isSerializationFailure(err);
    if (isSerializationFailure(err)) throw new ExecutionConflictError(`an execution changed while its transition was decided: ${(err as Error).message}`);
    throw err;
  } finally {
    // A conflict with this engine's other batch (it held some of these executions) says nothing about the cache.
    cache?.settle(hits, stale && !contended);
    cache?.release(ids);
  }
}

/** A start in an optimistic batch was seen before (its key or id is taken): start the batch the locked way. */
export class DuplicateStartError extends Error {
  override readonly name = "DuplicateStartError";
}

/**
 * Commits new executions (and what starting them produced) optimistically: when nothing but the
 * write is needed (no secrets to seal, no tenant lane to admit to), ONE statement inserts them
 * and writes the rest — where the locked path takes four round trips. A start key or id seen
 * before fails that statement whole (unique_violation) and throws DuplicateStartError: the
 * caller then starts the batch again through transition(), which skips the duplicates.
 */
export async function commitStartsOptimistically(db: TransitionDb, out: Changes, vault?: Vault): Promise<Committed<void>> {
  if (needsSealing(out) || needsAdmission(out)) return transition(db, [], async () => undefined, out, vault);
  await db.contextOffload?.offloadTasks(out);
  await db.payloadGuard?.fit(out);
  let written: Written;
  try {
    written = await writeChanges(db, out, OUTBOX_CLAIM_MS, undefined, out.created);
  } catch (err) {
    if (hasSqlState(err, "23505")) throw new DuplicateStartError((err as Error).message);
    throw err;
  }
  for (const { state } of out.created) {
    const version = written.versions.get(state.id);
    // Stored as null when absent (newExecutionRows): cached as a read would answer it, so later steps' {% input %} is the same either way.
    if (state.input === undefined) state.input = null;
    if (version) db.executionCache?.put(state, version, written.sizes.get(state.id) ?? Infinity);
  }
  return committedOf(undefined, out, new Set(out.created.map((c) => c.state.id)), written.outbox);
}

export async function transition<T>(
  db: TransitionDb,
  executionIds: string[],
  decide: (executions: Map<string, ExecutionState>, out: Changes, q: Queryable) => Promise<T>,
  out: Changes,
  /** Seals the secrets of tasks that ask for some; absent, such tasks fail with VAULT_NOT_CONFIGURED. */
  vault?: Vault,
): Promise<Committed<T>> {
  // Written here under the row locks: the cached states of these executions are out of date.
  db.executionCache?.evict(executionIds);
  return db.tx(async (q) => {
    const executions = await lockExecutions(q, executionIds);
    const value = await decide(executions, out, q);
    const { outbox, created } = await persist(q, out, vault, db.contextOffload, db.payloadGuard);
    return committedOf(value, out, created, outbox);
  });
}

async function persist(
  q: Queryable,
  out: Changes,
  vault: Vault | undefined,
  contextOffload: ContextOffload | undefined,
  payloadGuard: PayloadGuard | undefined,
): Promise<Written & { created: ReadonlySet<string> }> {
  // New executions go first and alone: a duplicate start must not leave tasks or messages behind.
  const created = out.created.length > 0 ? await insertExecutions(q, out.created) : new Set<string>();
  out.dropUncreated(created);
  // Before admission: a task queued for its tenant's turn waits with its secrets already sealed.
  await sealTaskSecrets(q, out, vault);
  // Before anything is written: the outbox row, a tenant's queued task and a republish all
  // carry the reference, never the large context. Blobs are content-addressed, so a rollback
  // after this leaves only orphans that the next attempt reuses.
  await contextOffload?.offloadTasks(out);
  // Last, on the bytes that will be sent (sealed secrets, context references): nothing the
  // server would refuse is committed as something to publish (a task too large fails its step).
  await payloadGuard?.fit(out);
  await admitTenantTasks(q, out);
  return { ...(await writeChanges(q, out, OUTBOX_CLAIM_MS)), created };
}
