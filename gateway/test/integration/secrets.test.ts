/**
 * The vault's operator surface against a real mesh with a vault key: `flowmonkey secrets
 * put|ls|keygen` as a child process, and PUT/GET /v1/secrets on the gateway. Values go in and
 * never come back out, not even in errors.
 */
import { randomBytes } from "node:crypto";
import { createLogger } from "@flowmonkey/shared";
import { keyPairOf, openSealed, sealFor } from "@flowmonkey/shared/vault";
import { createGateway, type Gateway } from "@flowmonkey/gateway";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startMesh, type TestMesh } from "../../../test/support/mesh.js";
import { useNatsServer } from "../../../test/support/nats.js";
import { useTestDatabase } from "../../../test/support/postgres.js";
import { runCli, runCliWithInput } from "./run-cli.js";

const nats = useNatsServer();
const pg = useTestDatabase();
let mesh: TestMesh;
let gateway: Gateway;

beforeAll(async () => {
  mesh = await startMesh({ natsUrl: nats.url, databaseUrl: pg.url, workers: [], engine: { vaultKey: randomBytes(32) } });
  gateway = createGateway({ nc: mesh.nc, log: createLogger({ name: "secrets-test", level: "silent" }), prefix: mesh.prefix, port: 0, host: "127.0.0.1", maxMessageBytes: 128 * 1024 });
  await gateway.start();
});
afterAll(async () => {
  await gateway?.close();
  await mesh?.close();
});

const target = () => ({ natsUrl: nats.url, prefix: mesh.prefix });
const storedRow = async (tenantId: string, key: string) =>
  (await mesh.engine.db.query<{ row: string }>("SELECT row_to_json(s)::text AS row FROM secrets s WHERE tenant_id = $1 AND key = $2", [tenantId, key])).rows[0]?.row;

describe("flowmonkey secrets", () => {
  it("put --from-stdin stores the value encrypted, drops one trailing newline, and never prints it", async () => {
    const value = `stdin-${randomBytes(12).toString("hex")}`;
    const run = await runCliWithInput(target(), `${value}\n`, "secrets", "put", "stripe.key", "--tenant", "acme", "--from-stdin", "--json");
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ tenantId: "acme", key: "stripe.key", created: true });
    expect(run.stdout + run.stderr).not.toContain(value);
    const row = await storedRow("acme", "stripe.key");
    expect(row).toBeDefined();
    expect(row).not.toContain(value);
    // The stored length says the newline was dropped: the value + a 16-byte tag.
    const { rows } = await mesh.engine.db.query<{ n: number }>("SELECT length(ciphertext)::int AS n FROM secrets WHERE tenant_id = 'acme' AND key = 'stripe.key'");
    expect(rows[0]!.n).toBe(value.length + 16);
  });

  it("put --value replaces; ls lists names only", async () => {
    const value = `flag-${randomBytes(12).toString("hex")}`;
    const put = await runCli(target(), "secrets", "put", "stripe.key", "--tenant", "acme", "--value", value);
    expect(put.code).toBe(0);
    expect(put.stdout).toContain("stripe.key replaced for tenant acme");
    const ls = await runCli(target(), "secrets", "ls", "--tenant", "acme", "--json");
    expect(ls.code).toBe(0);
    expect(JSON.parse(ls.stdout).secrets.map((s: { key: string }) => s.key)).toEqual(["stripe.key"]);
    expect(ls.stdout).not.toContain(value);
  });

  it("refuses a bad key name or two value sources with exit 2, and an empty stdin value", async () => {
    expect((await runCli(target(), "secrets", "put", "bad key", "--value", "x")).code).toBe(2);
    const both = await runCliWithInput(target(), "y", "secrets", "put", "k", "--value", "x", "--from-stdin");
    expect(both.code).toBe(2);
    expect(both.stderr).toContain("exactly one of --from-stdin or --value");
    expect((await runCliWithInput(target(), "\n", "secrets", "put", "k", "--from-stdin")).code).toBe(2);
  });

  it("keygen prints a working key pair and needs no NATS", async () => {
    const run = await runCli({ natsUrl: "nats://127.0.0.1:1", prefix: "fm" }, "secrets", "keygen", "--json");
    expect(run.code).toBe(0);
    const { publicKey, privateKey } = JSON.parse(run.stdout) as { publicKey: string; privateKey: string };
    const pair = keyPairOf(Buffer.from(privateKey, "base64"));
    expect(Buffer.from(pair.publicKey).toString("base64")).toBe(publicKey);
    const sealed = sealFor(Buffer.from(publicKey, "base64"), Buffer.from("hello"));
    expect(Buffer.from(openSealed(sealed, pair)!).toString()).toBe("hello");
  });
});

describe("PUT /v1/secrets/:key", () => {
  it("stores a secret (201, then 200 when replaced) and lists names with GET /v1/secrets", async () => {
    const value = `http-${randomBytes(12).toString("hex")}`;
    const put = (body: unknown) =>
      fetch(`${gateway.url}/v1/secrets/db.password`, { method: "PUT", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    const first = await put({ tenantId: "globex", value });
    expect(first.status).toBe(201);
    const firstText = await first.text();
    expect(JSON.parse(firstText)).toMatchObject({ tenantId: "globex", key: "db.password", created: true });
    expect(firstText).not.toContain(value);
    expect((await put({ tenantId: "globex", value: `${value}2` })).status).toBe(200);
    const list = await fetch(`${gateway.url}/v1/secrets?tenantId=globex`);
    expect(await list.json()).toMatchObject({ tenantId: "globex", secrets: [{ key: "db.password" }] });
    expect(await storedRow("globex", "db.password")).not.toContain(value);
  });

  it("answers a bad body with problem+json that does not echo the value", async () => {
    const value = `leak-${randomBytes(12).toString("hex")}`;
    const res = await fetch(`${gateway.url}/v1/secrets/db.password`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ value, extra: value }),
    });
    expect(res.status).toBe(400);
    expect(res.headers.get("content-type")).toContain("application/problem+json");
    const text = await res.text();
    expect(JSON.parse(text)).toMatchObject({ code: "INVALID_INPUT" });
    expect(text).not.toContain(value);
  });
});
