import { FmError, type Task } from "@flowmonkey/shared";
import { openSealed, wipe, type VaultKeyPair } from "@flowmonkey/shared/vault";
import type { SecretsApi } from "../sdk/handler-context.js";

export interface OpenedSecrets {
  readonly api: SecretsApi;
  /** Zeroes the opened values and forgets them; `get` returns undefined from then on. */
  clear(): void;
}

const NONE: OpenedSecrets = { api: { get: () => undefined, has: () => false, keys: () => [] }, clear: () => undefined };

/**
 * Opens the task's sealed secrets with its pool's private key, all of them or none: a value
 * that does not open (sealed for another pool or region) fails the task before its handler
 * runs. Errors name the pool and the keys, never a value. The sealed copies are dropped from
 * the task once opened.
 */
export function openTaskSecrets(task: Task, keys: VaultKeyPair | undefined): OpenedSecrets {
  const names = Object.keys(task.vault);
  if (names.length === 0) return NONE;
  const pool = `${task.metadata.region}/${task.handler.type}`;
  if (!keys) {
    throw new FmError("VAULT_NOT_CONFIGURED", `task carries sealed secrets (${names.join(", ")}) but this worker has no vault private key for ${pool} (FM_VAULT_PRIVATE_KEY)`);
  }
  const opened = new Map<string, Uint8Array>();
  for (const name of names) {
    const value = openSealed(task.vault[name]!, keys);
    if (!value) {
      for (const bytes of opened.values()) wipe(bytes);
      throw new FmError("VAULT_SEALED_FOR_ANOTHER_POOL", `secret "${name}" was not sealed for this worker's key of pool ${pool}; it cannot be opened here`);
    }
    opened.set(name, value);
  }
  task.vault = {};
  return {
    api: {
      get: (name) => {
        const bytes = opened.get(name);
        return bytes ? Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8") : undefined;
      },
      has: (name) => opened.has(name),
      keys: () => [...opened.keys()],
    },
    clear() {
      for (const bytes of opened.values()) wipe(bytes);
      opened.clear();
    },
  };
}
