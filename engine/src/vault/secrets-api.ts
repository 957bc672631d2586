import type { SecretListReply, SecretPutReply, SecretPutRequest } from "@flowmonkey/shared";
import { wipe } from "@flowmonkey/shared/vault";
import type { z } from "zod";
import type { Db } from "../store/db.js";
import { listSecretKeys, putSecret } from "../store/secrets.js";
import type { Vault } from "./vault.js";

type PutRequest = z.output<typeof SecretPutRequest>;

/** `secrets.put`: encrypts the value under the vault key and upserts its row; the reply names the key only. */
export async function storeSecret(db: Db, vault: Vault, request: PutRequest): Promise<SecretPutReply> {
  const plaintext = Buffer.from(request.value, "utf8");
  try {
    const sealed = vault.encrypt(request.tenantId, request.key, plaintext);
    const { created, updatedAt } = await putSecret(db, { tenantId: request.tenantId, key: request.key, ...sealed });
    return { tenantId: request.tenantId, key: request.key, created, updatedAt };
  } finally {
    wipe(plaintext);
  }
}

/** `secrets.list`: a tenant's key names and dates. Refused without a vault key, like put, so an unconfigured vault is noticed. */
export async function listSecrets(db: Db, vault: Vault, tenantId: string): Promise<SecretListReply> {
  vault.assertConfigured();
  return { tenantId, secrets: await listSecretKeys(db, tenantId) };
}
