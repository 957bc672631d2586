import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { isFmError } from "@flowmonkey/shared";
import { decryptAtRest, encryptAtRest, keyIdOf } from "../../src/vault/at-rest.js";
import { createVault } from "../../src/vault/vault.js";

const key = randomBytes(32);
const plaintext = Buffer.from("sk_live_0123456789", "utf8");

const codeOf = (fn: () => unknown) => {
  try {
    fn();
    return undefined;
  } catch (err) {
    return isFmError(err) ? err.code : String(err);
  }
};

describe("encryption at rest", () => {
  it("round-trips, with a fresh nonce every time and no plaintext in the ciphertext", () => {
    const a = encryptAtRest(key, "acme", "stripe.key", plaintext);
    const b = encryptAtRest(key, "acme", "stripe.key", plaintext);
    expect(a.nonce.equals(b.nonce)).toBe(false);
    expect(a.ciphertext.length).toBe(plaintext.length + 16);
    expect(a.ciphertext.includes(plaintext)).toBe(false);
    expect(decryptAtRest(key, "acme", "stripe.key", a).toString("utf8")).toBe("sk_live_0123456789");
  });

  it("refuses another vault key by its id, a row moved to another tenant or key, and a flipped bit", () => {
    const sealed = encryptAtRest(key, "acme", "stripe.key", plaintext);
    const otherKey = randomBytes(32);
    expect(() => decryptAtRest(otherKey, "acme", "stripe.key", sealed)).toThrow(new RegExp(`encrypted with vault key ${keyIdOf(key)}; this engine has ${keyIdOf(otherKey)}`));
    expect(codeOf(() => decryptAtRest(key, "globex", "stripe.key", sealed))).toBe("VAULT_DECRYPT_FAILED");
    expect(codeOf(() => decryptAtRest(key, "acme", "other.key", sealed))).toBe("VAULT_DECRYPT_FAILED");
    const flipped = { ...sealed, ciphertext: Buffer.from(sealed.ciphertext) };
    flipped.ciphertext[0]! ^= 1;
    expect(codeOf(() => decryptAtRest(key, "acme", "stripe.key", flipped))).toBe("VAULT_DECRYPT_FAILED");
  });

  it("keyIdOf is a stable fingerprint that reveals nothing of the key", () => {
    expect(keyIdOf(key)).toBe(keyIdOf(Buffer.from(key)));
    expect(keyIdOf(key)).toMatch(/^[0-9a-f]{16}$/);
    expect(key.toString("hex")).not.toContain(keyIdOf(key));
  });
});

describe("createVault", () => {
  it("without a key refuses with VAULT_NOT_CONFIGURED", () => {
    const vault = createVault();
    expect(vault.configured).toBe(false);
    expect(codeOf(() => vault.encrypt("", "k", plaintext))).toBe("VAULT_NOT_CONFIGURED");
    expect(codeOf(() => vault.assertConfigured())).toBe("VAULT_NOT_CONFIGURED");
  });

  it("finds a pool's own public key first, then its region's", () => {
    const own = randomBytes(32);
    const regional = randomBytes(32);
    const vault = createVault({ key, poolKeys: { "eu-west-1": regional, "eu-west-1/http-request": own } });
    expect(vault.poolKey("eu-west-1", "http-request")).toEqual({ pool: "eu-west-1/http-request", publicKey: own });
    expect(vault.poolKey("eu-west-1", "transform")).toEqual({ pool: "eu-west-1", publicKey: regional });
    expect(vault.poolKey("us-east-1", "http-request")).toBeUndefined();
  });
});
