import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import { FmError } from "@flowmonkey/shared";

/**
 * Encryption at rest of the vault: AES-256-GCM with the engine's key (FM_VAULT_KEY), a fresh
 * 96-bit nonce per write, and the row's identity (tenant, key) as additional authenticated
 * data, so a ciphertext copied onto another tenant's or key's row does not decrypt.
 */
export interface SealedAtRest {
  /** Ciphertext followed by the 16-byte GCM tag. */
  ciphertext: Buffer;
  nonce: Buffer;
  /** Which vault key encrypted it (see keyIdOf), so a changed key is named, not guessed. */
  keyId: string;
}

const NONCE_BYTES = 12;
const TAG_BYTES = 16;

/** A short, non-secret fingerprint of the vault key: the first 8 bytes of SHA-256 over a label and the key. */
export function keyIdOf(key: Uint8Array): string {
  return createHash("sha256").update("flowmonkey-vault-key-id\0").update(key).digest("hex").slice(0, 16);
}

const aadOf = (tenantId: string, key: string) => Buffer.from(`${tenantId}\0${key}`, "utf8");

export function encryptAtRest(vaultKey: Uint8Array, tenantId: string, key: string, plaintext: Uint8Array): SealedAtRest {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv("aes-256-gcm", vaultKey, nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(aadOf(tenantId, key));
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
  return { ciphertext, nonce, keyId: keyIdOf(vaultKey) };
}

/** The plaintext, or VAULT_DECRYPT_FAILED naming the key ids; never the ciphertext or the value. */
export function decryptAtRest(vaultKey: Uint8Array, tenantId: string, key: string, sealed: SealedAtRest): Buffer {
  const ours = keyIdOf(vaultKey);
  if (sealed.keyId !== ours) {
    throw new FmError("VAULT_DECRYPT_FAILED", `secret "${key}" was encrypted with vault key ${sealed.keyId}; this engine has ${ours}`);
  }
  if (sealed.ciphertext.length < TAG_BYTES || sealed.nonce.length !== NONCE_BYTES) {
    throw new FmError("VAULT_DECRYPT_FAILED", `secret "${key}" is not a vault ciphertext`);
  }
  const body = sealed.ciphertext.subarray(0, sealed.ciphertext.length - TAG_BYTES);
  const tag = sealed.ciphertext.subarray(sealed.ciphertext.length - TAG_BYTES);
  try {
    const decipher = createDecipheriv("aes-256-gcm", vaultKey, sealed.nonce, { authTagLength: TAG_BYTES });
    decipher.setAAD(aadOf(tenantId, key));
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(body), decipher.final()]);
  } catch (cause) {
    throw new FmError("VAULT_DECRYPT_FAILED", `secret "${key}" failed authentication (altered, or moved from another row)`, { cause });
  }
}
