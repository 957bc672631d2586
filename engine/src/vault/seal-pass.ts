import type { Failure, Task } from "@flowmonkey/shared";
import { isFmError } from "@flowmonkey/shared";
import { sealFor, wipe } from "@flowmonkey/shared/vault";
import type { Changes } from "../execution/changes.js";
import type { Queryable } from "../store/db.js";
import { unsentTaskResult } from "../outbox/conclusions.js";
import type { OutboxMessage } from "../store/outbox.js";
import { insertSecretAccess, readSecrets, type SecretAccessRow, type StoredSecret } from "../store/secrets.js";
import type { SealRequest } from "./seal-request.js";
import type { Vault } from "./vault.js";

/** Every message of this transaction that may be published, wherever it waits (now, later, a tenant's queue). */
function outgoing(out: Changes): OutboxMessage[] {
  return [
    ...out.immediateMessages(),
    ...out.delayedMessages().flatMap((d) => d.messages),
    ...out.laneDispatches().flatMap((d) => d.messages),
  ];
}

const poolOf = (task: Task) => `${task.metadata.region}/${task.handler.type}`;
const tenantOf = (task: Task) => task.metadata.tenantId ?? "";
const pairKey = (tenantId: string, key: string) => `${tenantId}\u0000${key}`;

/**
 * Runs inside the transaction, before anything is written: every task that asked for secrets
 * gets exactly those keys of its own tenant, each sealed for its target pool's public key,
 * in `task.vault` — plaintext exists only in this function's locals. Each key handed out (or
 * refused) is an audit row of the same transaction.
 *
 * A task whose secrets cannot all be handed out (no vault key, no key for its pool, a key the
 * tenant lacks, a row that does not decrypt) is not published without them: its message is
 * replaced by a non-retryable failure result for that attempt on fm.results, which the engine
 * applies like any worker's result — the step fails (or follows its onFailure), the tenant's
 * lane slot is released, and the execution moves on. Dispatch stays synchronous and unaware
 * of the database; one query per transaction reads every secret it needs.
 */
/** Some outgoing task asks for secrets: sealing them reads keys and writes the audit. */
export function needsSealing(out: Changes): boolean {
  return outgoing(out).some((message) => message.seal);
}

export async function sealTaskSecrets(q: Queryable, out: Changes, vault: Vault | undefined, now: Date = new Date()): Promise<void> {
  const requests = outgoing(out).flatMap((message) => (message.seal ? [{ message, seal: message.seal }] : []));
  if (requests.length === 0) return;

  const audit: SecretAccessRow[] = [];
  const auditAll = (seal: SealRequest, outcomeOf: (key: string) => string) => {
    const { task } = seal;
    for (const key of seal.keys) {
      audit.push({ executionId: task.executionId, stepId: task.stepId, attempt: task.attempt, tenantId: tenantOf(task), key, pool: poolOf(task), outcome: outcomeOf(key) });
    }
  };

  const sealable: Array<{ message: OutboxMessage; seal: SealRequest; publicKey: Uint8Array }> = [];
  for (const { message, seal } of requests) {
    const { task } = seal;
    const publicKey = vault?.configured ? vault.poolKey(task.metadata.region, task.handler.type)?.publicKey : undefined;
    if (!vault?.configured) {
      auditAll(seal, () => "VAULT_NOT_CONFIGURED");
      failInstead(message, { code: "VAULT_NOT_CONFIGURED", message: "step asks for secrets, but the engine has no vault key (FM_VAULT_KEY)", retryable: false }, now);
    } else if (!publicKey) {
      auditAll(seal, () => "VAULT_POOL_KEY_MISSING");
      const failure = { code: "VAULT_POOL_KEY_MISSING", message: `no public key for pool ${poolOf(task)} (nor region ${task.metadata.region}) in FM_VAULT_POOL_KEYS`, retryable: false };
      failInstead(message, failure, now);
    } else {
      sealable.push({ message, seal, publicKey });
    }
  }

  const wanted = sealable.flatMap(({ seal }) => seal.keys.map((key) => ({ tenantId: tenantOf(seal.task), key })));
  const stored = new Map<string, StoredSecret>((await readSecrets(q, wanted)).map((s) => [pairKey(s.tenantId, s.key), s]));

  for (const { message, seal, publicKey } of sealable) {
    const { task, keys } = seal;
    const tenantId = tenantOf(task);
    const missing = keys.filter((key) => !stored.has(pairKey(tenantId, key)));
    if (missing.length > 0) {
      auditAll(seal, (key) => (missing.includes(key) ? "VAULT_KEY_NOT_FOUND" : "withheld"));
      const whose = tenantId === "" ? "executions without a tenant" : `tenant ${tenantId}`;
      failInstead(message, { code: "VAULT_KEY_NOT_FOUND", message: `no secret ${missing.map((k) => `"${k}"`).join(", ")} stored for ${whose}`, retryable: false }, now);
      continue;
    }
    try {
      const sealed: Record<string, string> = {};
      for (const key of keys) {
        const plaintext = vault!.decrypt(tenantId, key, stored.get(pairKey(tenantId, key))!);
        try {
          sealed[key] = sealFor(publicKey, plaintext);
        } finally {
          wipe(plaintext);
        }
      }
      task.vault = sealed;
      auditAll(seal, () => "sealed");
      delete message.seal;
    } catch (thrown) {
      // A stored row that does not decrypt: the message names the key id, never a value.
      if (!isFmError(thrown)) throw thrown;
      auditAll(seal, () => thrown.code);
      failInstead(message, { code: thrown.code, message: thrown.message, retryable: false }, now);
    }
  }
  await insertSecretAccess(q, audit);
}

/** Turns a task message into the engine's failure result for that attempt (same transaction, same outbox row). */
function failInstead(message: OutboxMessage, failure: Failure, now: Date): void {
  const { task, failTo } = message.seal!;
  message.subject = failTo;
  message.body = unsentTaskResult(task, failure, now);
  // Its own de-dup id: a redelivered commit publishes the failure once, and never collides with the task's id.
  message.msgId = `vault-refused:${task.taskId}:${task.attempt}`;
  delete message.seal;
}
