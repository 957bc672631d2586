import type { Changes } from "../execution/changes.js";
import type { ExecutionState } from "../scheduler/state.js";
import type { Db, Queryable } from "./db.js";
import { insertExecutions, lockExecutions, updateExecutions } from "./executions.js";
import { enqueueOutbox, type OutboxMessage } from "./outbox.js";
import { insertRejections } from "./rejections.js";
import { insertTaskAttempts, recordTaskOutcomes } from "./tasks.js";

/** How long the committing process holds its own outbox row before the sweep may publish it. */
export const OUTBOX_CLAIM_MS = 15_000;

export interface Committed<T> {
  value: T;
  /** The row holding what must be published now, and its messages. */
  outbox?: { id: number; messages: OutboxMessage[] };
  /** Ids of the executions this transaction created (a duplicate start creates none). */
  created: ReadonlySet<string>;
}

/**
 * The one shape of every engine state change: lock the executions involved, let `decide`
 * change them in memory, then write the new states, task rows, rejections and outgoing
 * messages in the same transaction.
 */
export async function transition<T>(
  db: Db,
  executionIds: string[],
  decide: (executions: Map<string, ExecutionState>, out: Changes, q: Queryable) => Promise<T>,
  out: Changes,
): Promise<Committed<T>> {
  return db.tx(async (q) => {
    const executions = await lockExecutions(q, executionIds);
    const value = await decide(executions, out, q);
    const { outbox, created } = await persist(q, out);
    return outbox ? { value, outbox, created } : { value, created };
  });
}

async function persist(
  q: Queryable,
  out: Changes,
): Promise<{ outbox?: { id: number; messages: OutboxMessage[] }; created: ReadonlySet<string> }> {
  const created = out.created.length > 0 ? await insertExecutions(q, out.created) : new Set<string>();
  out.dropUncreated(created);
  await updateExecutions(q, [...out.updated.values()]);
  await insertTaskAttempts(q, out.taskAttempts());
  await recordTaskOutcomes(q, out.taskOutcomes);
  await insertRejections(q, out.rejections);
  for (const { notBefore, messages } of out.delayedMessages()) await enqueueOutbox(q, messages, { notBefore, claimMs: 0 });
  const messages = out.immediateMessages();
  const id = await enqueueOutbox(q, messages, { claimMs: OUTBOX_CLAIM_MS });
  return id === undefined ? { created } : { outbox: { id, messages }, created };
}
