/**
 * X25519 sealed boxes (libsodium's crypto_box_seal): the engine seals a secret for a worker
 * pool's public key; only the holder of that pool's private key can open it. The sender keeps
 * nothing that could open it again (the ephemeral key is erased), and a box opened with any
 * other key fails its authentication instead of yielding garbage.
 *
 * Its own entry point (`@flowmonkey/shared/vault`) so that only the processes that seal or
 * open load libsodium; top-level await: once imported, every function here is synchronous.
 */
import sodium from "libsodium-wrappers";
import { KEY_BYTES } from "./keys.js";

await sodium.ready;

export interface VaultKeyPair {
  publicKey: Uint8Array;
  privateKey: Uint8Array;
}

/** A fresh X25519 key pair for a worker pool (`flowmonkey secrets keygen`). */
export function generatePoolKeyPair(): VaultKeyPair {
  const { publicKey, privateKey } = sodium.crypto_box_keypair();
  return { publicKey, privateKey };
}

/** The public half of a private key: a worker is configured with its private key only. */
export function keyPairOf(privateKey: Uint8Array): VaultKeyPair {
  if (privateKey.length !== KEY_BYTES) throw new RangeError(`a vault private key is ${KEY_BYTES} bytes`);
  return { publicKey: sodium.crypto_scalarmult_base(privateKey), privateKey };
}

/** Seals `plaintext` for `publicKey`; base64 (standard alphabet), as it travels in `task.vault`. */
export function sealFor(publicKey: Uint8Array, plaintext: Uint8Array): string {
  return sodium.to_base64(sodium.crypto_box_seal(plaintext, publicKey), sodium.base64_variants.ORIGINAL);
}

/** Opens a sealed value; undefined when it was not sealed for this key pair (or is not a sealed box at all). */
export function openSealed(sealedBase64: string, keys: VaultKeyPair): Uint8Array | undefined {
  let box: Uint8Array;
  try {
    box = sodium.from_base64(sealedBase64, sodium.base64_variants.ORIGINAL);
  } catch {
    // Not base64: nothing this key could open.
    return undefined;
  }
  if (box.length < sodium.crypto_box_SEALBYTES) return undefined;
  try {
    return sodium.crypto_box_seal_open(box, keys.publicKey, keys.privateKey);
  } catch {
    // Authentication failed: sealed for another key. The caller reports it with its own code.
    return undefined;
  }
}

/** Overwrites secret bytes in place (a best effort: copies the runtime made are out of reach). */
export function wipe(bytes: Uint8Array): void {
  sodium.memzero(bytes);
}

export const toBase64 = (bytes: Uint8Array): string => sodium.to_base64(bytes, sodium.base64_variants.ORIGINAL);
