import {
  FmError,
  isFmError,
  parseWith,
  SealedSecret,
  type SecretDeleteReply,
  type SecretListReply,
  type SecretPublicKeyReply,
  type SecretPutReply,
  type SecretPutRequest,
  type SecretRotateReply,
} from "@flowmonkey/shared";
import { openSealed, wipe } from "@flowmonkey/shared/vault";
import type { z } from "zod";
import type { Db } from "../store/db.js";
import { countSecretsNotUnder, deleteSecret, listSecretKeys, lockSecretsToRotate, putSecret, rewrapSecret } from "../store/secrets.js";
import type { Vault } from "./vault.js";

type PutRequest = z.output<typeof SecretPutRequest>;

/**
 * `secrets.put`: opens the sealed value with the vault's transport key, checks it was sealed
 * for this tenant and key, encrypts it under the vault key and upserts its row; the reply
 * names the key only.
 */
export async function storeSecret(db: Db, vault: Vault, request: PutRequest): Promise<SecretPutReply> {
  const opened = openSealed(request.sealedValue, vault.transportKeys());
  if (!opened) {
    throw new FmError("INVALID_INPUT", `sealedValue is not sealed for this engine's vault key ${vault.keyId}: seal it for the key the secrets.publicKey endpoint gives (flowmonkey secrets put and the gateway do)`);
  }
  let secret: z.output<typeof SealedSecret>;
  try {
    secret = parseWith(SealedSecret, JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(opened)), "sealed secret");
  } catch {
    // Never the contents: they may be the value.
    throw new FmError("INVALID_INPUT", "sealedValue does not hold a sealed secret ({ tenantId, key, value } as JSON)");
  } finally {
    wipe(opened);
  }
  if (secret.tenantId !== request.tenantId || secret.key !== request.key) {
    throw new FmError("INVALID_INPUT", `sealedValue was sealed for tenant "${secret.tenantId}" key "${secret.key}", not for tenant "${request.tenantId}" key "${request.key}"`);
  }
  const plaintext = Buffer.from(secret.value, "utf8");
  try {
    const sealed = vault.encrypt(request.tenantId, request.key, plaintext);
    const { created, updatedAt } = await putSecret(db, { tenantId: request.tenantId, key: request.key, ...sealed });
    return { tenantId: request.tenantId, key: request.key, created, updatedAt };
  } finally {
    wipe(plaintext);
  }
}

/** `secrets.publicKey`: the key clients seal secrets for. */
export function secretsPublicKey(vault: Vault): SecretPublicKeyReply {
  return vault.publicKey();
}

/** `secrets.list`: a tenant's key names and dates. Refused without a vault key, like put, so an unconfigured vault is noticed. */
export async function listSecrets(db: Db, vault: Vault, tenantId: string): Promise<SecretListReply> {
  vault.assertConfigured();
  return { tenantId, secrets: await listSecretKeys(db, tenantId) };
}

/** `secrets.delete`: forgets one secret. */
export async function forgetSecret(db: Db, vault: Vault, tenantId: string, key: string): Promise<SecretDeleteReply> {
  vault.assertConfigured();
  return { tenantId, key, deleted: await deleteSecret(db, tenantId, key) };
}

/**
 * `secrets.rotate`: one batch of re-encryption under the current vault key, in one transaction
 * (rows are decrypted with the previous key they name and written back under the current one).
 * Crash-safe: a batch commits whole or not at all, every row stays readable (old key or new),
 * and running it again carries on where it stopped.
 */
export async function rotateSecrets(db: Db, vault: Vault, limit: number): Promise<SecretRotateReply> {
  vault.assertConfigured();
  const keyId = vault.keyId!;
  const unreadable: SecretRotateReply["unreadable"] = [];
  const rotated = await db.tx(async (q) => {
    let done = 0;
    for (const row of await lockSecretsToRotate(q, keyId, limit)) {
      let plaintext: Buffer;
      try {
        plaintext = vault.decrypt(row.tenantId, row.key, row);
      } catch (err) {
        if (!isFmError(err) || err.code !== "VAULT_DECRYPT_FAILED") throw err;
        unreadable.push({ tenantId: row.tenantId, key: row.key, keyId: row.keyId });
        continue;
      }
      try {
        await rewrapSecret(q, { tenantId: row.tenantId, key: row.key, ...vault.encrypt(row.tenantId, row.key, plaintext) });
        done++;
      } finally {
        wipe(plaintext);
      }
    }
    return done;
  });
  return { keyId, rotated, remaining: await countSecretsNotUnder(db, keyId), unreadable };
}
