/**
 * Vault key rotation and deletion on a real mesh: secrets stored under key K1 stay readable by
 * an engine whose FM_VAULT_KEY is K2 and whose FM_VAULT_PREVIOUS_KEYS holds K1; `secrets.rotate`
 * re-encrypts them under K2 (in batches, safe to repeat); then an engine with K2 alone reads
 * them. A deleted secret fails the steps that list it with VAULT_KEY_NOT_FOUND.
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { generatePoolKeyPair } from "@flowmonkey/shared/vault";
import { defineHandler } from "@flowmonkey/worker";
import { startMesh, type TestMesh } from "../support/mesh.js";
import { uniquePrefix, useNatsServer } from "../support/nats.js";
import { useTestDatabase } from "../support/postgres.js";

const nats = useNatsServer();
const db = useTestDatabase();
const prefix = uniquePrefix();
const pool = generatePoolKeyPair();
const K1 = randomBytes(32);
const K2 = randomBytes(32);
const VALUES = { a: `a-${randomBytes(8).toString("hex")}`, b: `b-${randomBytes(8).toString("hex")}` };
let mesh: TestMesh | undefined;

/** Says what it got, so the test can check the value without a log of it. */
const reveal = defineHandler({
  type: "reveal",
  execute: (ctx) => ({ a: ctx.secrets.get("a") ?? null }),
});

/** A mesh on the same prefix and database as the one before it, with these vault keys. */
async function meshWith(keys: { key: Uint8Array; previous?: Uint8Array[] }): Promise<TestMesh> {
  await mesh?.close();
  mesh = await startMesh({
    natsUrl: nats.url,
    databaseUrl: db.url,
    prefix,
    workers: [],
    engine: { vaultKey: keys.key, vaultPoolKeys: { "us-east-1": pool.publicKey }, ...(keys.previous ? { vaultPreviousKeys: keys.previous } : {}) },
  });
  await mesh.startWorker({ handlers: [reveal], worker: { vaultPrivateKey: pool.privateKey } });
  return mesh;
}

async function runReveal(m: TestMesh) {
  const { executionId } = await m.api.start("reveal-a", { input: {} });
  return m.waitForStatus(executionId, ["completed", "failed"], 20_000);
}

async function keyIds(): Promise<string[]> {
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  try {
    return (await client.query<{ key_id: string }>("SELECT key_id FROM secrets ORDER BY key")).rows.map((r) => r.key_id);
  } finally {
    await client.end();
  }
}

afterAll(async () => {
  await mesh?.close();
});

describe("vault key rotation", () => {
  it("reads under the previous key, re-encrypts under the new one, then needs only the new one; delete forgets", async () => {
    const first = await meshWith({ key: K1 });
    await first.putFlow({ id: "reveal-a", steps: [{ id: "r", handler: "reveal", vault: ["a"] }] });
    await first.api.putSecret({ key: "a", value: VALUES.a });
    await first.api.putSecret({ key: "b", value: VALUES.b });
    const k1 = (await first.api.secretsPublicKey()).keyId;
    expect(await keyIds()).toEqual([k1, k1]);
    expect((await runReveal(first)).output).toEqual({ a: VALUES.a });

    // FM_VAULT_KEY = K2, FM_VAULT_PREVIOUS_KEYS = K1: the rows are still K1's, and readable.
    const second = await meshWith({ key: K2, previous: [K1] });
    const k2 = (await second.api.secretsPublicKey()).keyId;
    expect(k2).not.toBe(k1);
    expect((await runReveal(second)).output).toEqual({ a: VALUES.a });
    // One row per batch: the rotation carries on where the last batch stopped.
    expect(await second.api.rotateSecrets({ limit: 1 })).toEqual({ keyId: k2, rotated: 1, remaining: 1, unreadable: [] });
    expect(await second.api.rotateSecrets({ limit: 1 })).toEqual({ keyId: k2, rotated: 1, remaining: 0, unreadable: [] });
    expect(await second.api.rotateSecrets()).toEqual({ keyId: k2, rotated: 0, remaining: 0, unreadable: [] });
    expect(await keyIds()).toEqual([k2, k2]);

    // K1 dropped: everything is readable with K2 alone.
    const third = await meshWith({ key: K2 });
    expect((await runReveal(third)).output).toEqual({ a: VALUES.a });

    expect(await third.api.deleteSecret({ key: "a" })).toEqual({ tenantId: "", key: "a", deleted: true });
    expect(await third.api.deleteSecret({ key: "a" })).toEqual({ tenantId: "", key: "a", deleted: false });
    const failed = await runReveal(third);
    expect(failed.status).toBe("failed");
    expect(failed.error?.code).toBe("VAULT_KEY_NOT_FOUND");
    expect((await third.api.listSecrets()).secrets.map((s) => s.key)).toEqual(["b"]);
  });

  it("an engine with neither key names the rows it cannot read instead of rotating them", async () => {
    const stranger = await meshWith({ key: randomBytes(32) });
    const reply = await stranger.api.rotateSecrets();
    expect(reply.rotated).toBe(0);
    expect(reply.remaining).toBe(1);
    expect(reply.unreadable).toEqual([{ tenantId: "", key: "b", keyId: expect.any(String) }]);
  });
});
