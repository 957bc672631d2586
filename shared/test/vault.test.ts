import { describe, expect, it } from "vitest";
import { Base64Key, decodeBase64, jsonText, PoolName, PoolPublicKeys, SecretKeyName } from "../src/vault/keys.js";
import { generatePoolKeyPair, keyPairOf, openSealed, sealFor, toBase64, wipe } from "../src/vault/sealed-box.js";

const bytes = (text: string) => new TextEncoder().encode(text);
const text = (b: Uint8Array) => new TextDecoder().decode(b);

describe("sealed boxes", () => {
  it("open with the key pair they were sealed for, and only with it", () => {
    const pool = generatePoolKeyPair();
    const other = generatePoolKeyPair();
    const sealed = sealFor(pool.publicKey, bytes("sk_live_123"));
    expect(text(openSealed(sealed, pool)!)).toBe("sk_live_123");
    expect(openSealed(sealed, other)).toBeUndefined();
    // A key pair rebuilt from the private key alone (what a worker is configured with) opens it.
    expect(text(openSealed(sealed, keyPairOf(pool.privateKey))!)).toBe("sk_live_123");
  });

  it("are fresh each time and carry no plaintext", () => {
    const pool = generatePoolKeyPair();
    const a = sealFor(pool.publicKey, bytes("same value"));
    const b = sealFor(pool.publicKey, bytes("same value"));
    expect(a).not.toBe(b);
    expect(Buffer.from(a, "base64").toString("latin1")).not.toContain("same value");
  });

  it("refuse garbage, truncation and tampering without throwing", () => {
    const pool = generatePoolKeyPair();
    const sealed = Buffer.from(sealFor(pool.publicKey, bytes("v")), "base64");
    expect(openSealed("not base64 !!", pool)).toBeUndefined();
    expect(openSealed(toBase64(sealed.subarray(0, 20)), pool)).toBeUndefined();
    sealed[sealed.length - 1]! ^= 1;
    expect(openSealed(toBase64(sealed), pool)).toBeUndefined();
  });

  it("wipe zeroes the bytes in place", () => {
    const secret = bytes("abc");
    wipe(secret);
    expect([...secret]).toEqual([0, 0, 0]);
  });
});

describe("vault key schemas", () => {
  it("Base64Key takes exactly 32 bytes in either base64 alphabet, and never echoes the value", () => {
    const key = generatePoolKeyPair().publicKey;
    const b64 = Buffer.from(key).toString("base64");
    expect([...Base64Key.parse(b64)]).toEqual([...key]);
    expect([...Base64Key.parse(Buffer.from(key).toString("base64url"))]).toEqual([...key]);
    const short = Base64Key.safeParse(Buffer.alloc(16).toString("base64"));
    expect(short.success).toBe(false);
    expect(JSON.stringify(short.error?.issues)).not.toContain(Buffer.alloc(16).toString("base64"));
    expect(Base64Key.safeParse("@@not-base64@@").success).toBe(false);
    expect(decodeBase64("")).toBeUndefined();
  });

  it("pool names are <region>/<handler> or <region>", () => {
    expect(PoolName.safeParse("us-east-1/http-request").success).toBe(true);
    expect(PoolName.safeParse("eu-west-1").success).toBe(true);
    expect(PoolName.safeParse("EU/x").success).toBe(false);
    expect(PoolName.safeParse("eu-west-1/a/b").success).toBe(false);
  });

  it("FM_VAULT_POOL_KEYS is JSON checked field by field, naming the pool and not the key", () => {
    const pub = Buffer.from(generatePoolKeyPair().publicKey).toString("base64");
    const schema = jsonText(PoolPublicKeys);
    expect(Object.keys(schema.parse(JSON.stringify({ "eu-west-1": pub, "us-east-1/echo": pub })))).toEqual(["eu-west-1", "us-east-1/echo"]);
    const bad = schema.safeParse(JSON.stringify({ "us-east-1/echo": "c2hvcnQ=" }));
    expect(bad.success).toBe(false);
    expect(bad.error?.issues[0]?.message).toMatch(/^us-east-1\/echo: must be 32 bytes/);
    expect(schema.safeParse("{not json").error?.issues[0]?.message).toBe("is not valid JSON");
  });

  it("secret names are letters, digits and . _ - /", () => {
    expect(SecretKeyName.safeParse("stripe.key").success).toBe(true);
    expect(SecretKeyName.safeParse("team/db_password-2").success).toBe(true);
    expect(SecretKeyName.safeParse("has space").success).toBe(false);
    expect(SecretKeyName.safeParse(".hidden").success).toBe(false);
  });
});
