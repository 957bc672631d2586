import { hkdfSync } from "node:crypto";
import { FmError, type PoolPublicKeys } from "@flowmonkey/shared";
import { keyPairOf, toBase64, type VaultKeyPair } from "@flowmonkey/shared/vault";
import { decryptAtRest, encryptAtRest, keyIdOf, type SealedAtRest } from "./at-rest.js";

/**
 * The X25519 key pair clients seal secrets for (`secrets.put`), derived from the vault key
 * (HKDF-SHA256 with its own label): nothing more to configure or store, and it changes with
 * the vault key.
 */
function transportKeysOf(vaultKey: Uint8Array): VaultKeyPair {
  return keyPairOf(new Uint8Array(hkdfSync("sha256", vaultKey, new Uint8Array(0), "flowmonkey-vault-transport-v1", 32)));
}

export interface VaultOptions {
  /** The 32-byte AES-256 key secrets are encrypted with at rest (FM_VAULT_KEY). Absent: no vault. */
  key?: Uint8Array | undefined;
  /**
   * Keys secrets may still be encrypted with after a rotation (FM_VAULT_PREVIOUS_KEYS): read,
   * never written, until `secrets rotate` has re-encrypted every row under `key`.
   */
  previousKeys?: readonly Uint8Array[] | undefined;
  /** Public keys of the worker pools: `<region>/<handler>`, or `<region>` for the whole region. */
  poolKeys?: PoolPublicKeys | undefined;
}

/** A pool's public key and the name it was found under (what the audit row records). */
export interface PoolKey {
  pool: string;
  publicKey: Uint8Array;
}

export type Vault = ReturnType<typeof createVault>;

/** The engine's vault keys. Holds no secret values: those are read per transaction and dropped. */
export function createVault(options: VaultOptions = {}) {
  const key = options.key;
  const poolKeys = new Map(Object.entries(options.poolKeys ?? {}));
  const transport = key ? transportKeysOf(key) : undefined;
  /** Every key a row may name, by its id: the current one and the previous ones. */
  const keyring = new Map([...(options.previousKeys ?? []), ...(key ? [key] : [])].map((k) => [keyIdOf(k), k]));

  function requireKey(): Uint8Array {
    if (!key) throw new FmError("VAULT_NOT_CONFIGURED", "the engine has no vault key: set FM_VAULT_KEY (32 bytes, base64) to store and hand out secrets");
    return key;
  }

  function transportOf(): VaultKeyPair {
    requireKey();
    return transport!;
  }

  return {
    configured: key !== undefined,
    /** Non-secret fingerprint of the vault key, for start-up logs (undefined: no vault). */
    keyId: key ? keyIdOf(key) : undefined,
    pools: [...poolKeys.keys()],
    /** Throws VAULT_NOT_CONFIGURED when there is no vault key. */
    assertConfigured: (): void => void requireKey(),
    encrypt: (tenantId: string, name: string, value: Uint8Array): SealedAtRest => encryptAtRest(requireKey(), tenantId, name, value),
    /** The public key clients seal secrets for, with the vault key's id. Throws VAULT_NOT_CONFIGURED without a vault key. */
    publicKey: (): { publicKey: string; keyId: string } => ({ publicKey: toBase64(transportOf().publicKey), keyId: keyIdOf(requireKey()) }),
    /** The key pair that opens what clients sealed (secrets-api.ts). */
    transportKeys: (): VaultKeyPair => transportOf(),
    /** With the key the row names (current or previous); VAULT_DECRYPT_FAILED naming the ids when it is neither. */
    decrypt: (tenantId: string, name: string, sealed: SealedAtRest): Buffer => {
      const current = requireKey();
      const known = keyring.get(sealed.keyId);
      if (!known) {
        const previous = [...keyring.keys()].filter((id) => id !== keyIdOf(current));
        throw new FmError(
          "VAULT_DECRYPT_FAILED",
          `secret "${name}" was encrypted with vault key ${sealed.keyId}; this engine has ${keyIdOf(current)}${previous.length ? ` (previous: ${previous.join(", ")})` : ""}`,
        );
      }
      return decryptAtRest(known, tenantId, name, sealed);
    },
    /** The pool's own key, else its region's; a region key lets one key pair serve every handler there. */
    poolKey(region: string, handler: string): PoolKey | undefined {
      const exact = `${region}/${handler}`;
      const own = poolKeys.get(exact);
      if (own) return { pool: exact, publicKey: own };
      const regional = poolKeys.get(region);
      return regional ? { pool: region, publicKey: regional } : undefined;
    },
  };
}
