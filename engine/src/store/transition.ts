import type { ContextOffload } from "../context/offload.js";
import type { PayloadGuard } from "../outbox/payload-guard.js";
import type { Changes } from "../execution/changes.js";
import type { ExecutionState } from "../scheduler/state.js";
import { sealTaskSecrets } from "../vault/seal-pass.js";
import type { Vault } from "../vault/vault.js";
import type { Db, Queryable } from "./db.js";
import { insertExecutions, lockExecutions } from "./executions.js";
import type { OutboxMessage } from "./outbox.js";
import { admitTenantTasks } from "./tenant-lanes.js";
import { writeChanges } from "./write-changes.js";

/** How long the committing process holds its own outbox row before the sweep may publish it. */
export const OUTBOX_CLAIM_MS = 15_000;

/**
 * The engine's database with what every transition does to its outgoing tasks before they are
 * written: large contexts leave as blob references (engine.ts attaches it; tools and tests
 * that pass a bare Db send every context inline). Carried by the Db so that no caller of
 * transition() has to pass it along.
 */
export type TransitionDb = Db & { readonly contextOffload?: ContextOffload; readonly payloadGuard?: PayloadGuard };

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
export async function transition<T>(
  db: TransitionDb,
  executionIds: string[],
  decide: (executions: Map<string, ExecutionState>, out: Changes, q: Queryable) => Promise<T>,
  out: Changes,
  /** Seals the secrets of tasks that ask for some; absent, such tasks fail with VAULT_NOT_CONFIGURED. */
  vault?: Vault,
): Promise<Committed<T>> {
  return db.tx(async (q) => {
    const executions = await lockExecutions(q, executionIds);
    const value = await decide(executions, out, q);
    const { outbox, created } = await persist(q, out, vault, db.contextOffload, db.payloadGuard);
    const due = out.delayedMessages().map((d) => d.notBefore.getTime());
    return {
      value,
      created,
      ...(outbox ? { outbox } : {}),
      ...(due.length > 0 ? { nextDueAt: new Date(Math.min(...due)) } : {}),
    };
  });
}

async function persist(
  q: Queryable,
  out: Changes,
  vault: Vault | undefined,
  contextOffload: ContextOffload | undefined,
  payloadGuard: PayloadGuard | undefined,
): Promise<{ outbox?: { id: number; messages: OutboxMessage[] }; created: ReadonlySet<string> }> {
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
  const outbox = await writeChanges(q, out, OUTBOX_CLAIM_MS);
  return outbox ? { outbox, created } : { created };
}
