/**
 * The vault end to end (invariant 5): a step gets only the secrets it lists, of its own
 * tenant, sealed for its pool; a worker of another pool cannot open them; plaintext never
 * reaches the task stream, the database, logs, results, events or errors; every hand-out is
 * an audit row. Real nats-server, real PostgreSQL, real libsodium.
 */
import { createHash, randomBytes } from "node:crypto";
import { Writable } from "node:stream";
import type { Msg } from "@nats-io/nats-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger, type Task } from "@flowmonkey/shared";
import { generatePoolKeyPair, toBase64 } from "@flowmonkey/shared/vault";
import { defineHandler } from "@flowmonkey/worker";
import { startMesh, type TestMesh } from "../support/mesh.js";
import { useNatsServer } from "../support/nats.js";
import { useTestDatabase } from "../support/postgres.js";
import { waitFor } from "../support/wait.js";

const nats = useNatsServer();
const pg = useTestDatabase();

/** Every line the engine and the workers log, at trace level. */
const logLines: string[] = [];
const capture = new Writable({
  write(chunk: Buffer, _enc, done) {
    logLines.push(chunk.toString("utf8"));
    done();
  },
});

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");
const secretValue = (label: string) => `${label}-${randomBytes(18).toString("hex")}`;

/** Values stored in the vault; none of them may appear anywhere but inside a handler. */
const A_OF_ACME = secretValue("acme-a");
const B_OF_ACME = secretValue("acme-b");
const A_OF_GLOBEX = secretValue("globex-a");
const PLAINTEXTS = [A_OF_ACME, B_OF_ACME, A_OF_GLOBEX];

/** Reports what it received without revealing it: the names, and a hash of each value. */
const probe = defineHandler({
  type: "secret-probe",
  execute(ctx) {
    ctx.log.debug({ keys: ctx.secrets.keys(), task: ctx.task }, "probe ran");
    const hashes = Object.fromEntries(ctx.secrets.keys().map((k) => [k, sha256(ctx.secrets.get(k)!)]));
    return { keys: ctx.secrets.keys(), hashes, hasB: ctx.secrets.has("b") };
  },
});

const us = generatePoolKeyPair();
const eu = generatePoolKeyPair();
let mesh: TestMesh;
const published: Msg[] = [];
const events: string[] = [];
const wire: string[] = [];

beforeAll(async () => {
  const log = createLogger({ name: "vault-test", level: "trace", destination: capture });
  mesh = await startMesh({
    natsUrl: nats.url,
    databaseUrl: pg.url,
    workers: [],
    log,
    engine: {
      vaultKey: randomBytes(32),
      // A region-wide key for us-east-1 and eu-west-1; no key at all for ap-south-1.
      vaultPoolKeys: { "us-east-1": us.publicKey, "eu-west-1": eu.publicKey },
      // One task of a tenant per lane at a time: a second one waits in the engine's tenant queue, sealed.
      tenantMaxInFlight: 1,
    },
  });
  await mesh.startWorker({ handlers: [probe], region: "us-east-1", worker: { vaultPrivateKey: us.privateKey } });
  // An eu-west-1 worker holding the us-east-1 key: a worker of another region's pool.
  await mesh.startWorker({ handlers: [probe], region: "eu-west-1", worker: { vaultPrivateKey: us.privateKey } });
  // Copies of every task as it is published, and every execution event.
  mesh.nc.subscribe(mesh.names.subjects.tasksAll, { callback: (_err, msg) => void published.push(msg) });
  mesh.nc.subscribe(mesh.names.subjects.execAll, { callback: (_err, msg) => void events.push(msg.string()) });
  // Everything on the wire while the secrets are stored: requests, replies, anything.
  mesh.nc.subscribe(">", { callback: (_err, msg) => void wire.push(msg.string()) });
  await mesh.nc.flush();

  await mesh.api.putSecret({ tenantId: "acme", key: "a", value: A_OF_ACME });
  await mesh.api.putSecret({ tenantId: "acme", key: "b", value: B_OF_ACME });
  await mesh.api.putSecret({ tenantId: "globex", key: "a", value: A_OF_GLOBEX });
  await mesh.putFlow({ id: "uses-a", steps: [{ id: "probe", handler: "secret-probe", vault: ["a"] }] });
  await mesh.putFlow({ id: "uses-a-in-eu", steps: [{ id: "probe", handler: "secret-probe", region: "eu-west-1", vault: ["a"] }] });
  await mesh.putFlow({ id: "uses-a-in-ap", steps: [{ id: "probe", handler: "secret-probe", region: "ap-south-1", vault: ["a"] }] });
  await mesh.putFlow({ id: "uses-b", steps: [{ id: "probe", handler: "secret-probe", vault: ["b"] }] });
  await mesh.putFlow({
    id: "parallel",
    steps: [
      { id: "one", handler: "secret-probe", vault: ["a"], dependsOn: [] },
      { id: "two", handler: "secret-probe", vault: ["a", "b"], dependsOn: [] },
    ],
  });
});
describe("secrets.put", () => {
  it("never carries a value in clear: the client seals it for the engine's vault public key", async () => {
    expect(wire.some((m) => m.includes('"sealedValue"'))).toBe(true);
    for (const plaintext of PLAINTEXTS) expect(wire.filter((m) => m.includes(plaintext))).toEqual([]);
  });

  it("refuses a value in clear, one sealed for another key or tenant, and one sealed for another engine", async () => {
    const raw = async (body: unknown) => {
      const reply = await mesh.nc.request(mesh.names.subjects.api("secrets.put"), JSON.stringify(body), { timeout: 5000 });
      return JSON.parse(reply.string()) as { error?: { code: string; message: string } };
    };
    const clear = await raw({ tenantId: "acme", key: "c", value: "in clear" });
    expect(clear.error).toMatchObject({ code: "INVALID_INPUT" });

    const { sealFor } = await import("@flowmonkey/shared/vault");
    const { decodeBase64 } = await import("@flowmonkey/shared");
    const engineKey = decodeBase64((await mesh.api.secretsPublicKey()).publicKey)!;
    const sealed = (body: object, key = engineKey) => sealFor(key, new TextEncoder().encode(JSON.stringify(body)));
    const moved = await raw({ tenantId: "globex", key: "a", sealedValue: sealed({ tenantId: "acme", key: "a", value: "x" }) });
    expect(moved.error?.code).toBe("INVALID_INPUT");
    expect(moved.error?.message).toContain('sealed for tenant "acme" key "a", not for tenant "globex" key "a"');
    const stranger = await raw({ tenantId: "acme", key: "c", sealedValue: sealed({ tenantId: "acme", key: "c", value: "x" }, generatePoolKeyPair().publicKey) });
    expect(stranger.error?.message).toContain("is not sealed for this engine's vault key");
    // Nothing was stored by any of them.
    expect((await mesh.api.listSecrets("acme")).secrets.map((x) => x.key).sort()).toEqual(["a", "b"]);
  });
});

afterAll(async () => {
  await mesh?.close();
});

const tasksOf = (executionId: string): Task[] =>
  published.map((m) => m.json<Task>()).filter((t) => t.executionId === executionId);

describe("handing secrets to a step", () => {
  it("gives the step only the keys it lists, of its tenant, sealed on the stream and opened by the handler", async () => {
    const { executionId } = await mesh.api.start("uses-a", { input: {}, tenantId: "acme" });
    const view = await mesh.waitForStatus(executionId, "completed");
    expect(view.output).toEqual({ keys: ["a"], hashes: { a: sha256(A_OF_ACME) }, hasB: false });

    const [task] = await waitFor(() => (tasksOf(executionId).length > 0 ? tasksOf(executionId) : undefined));
    expect(Object.keys(task!.vault)).toEqual(["a"]);
    // 32-byte ephemeral public key + 16-byte MAC + the value, base64: ciphertext, not the value.
    expect(Buffer.from(task!.vault["a"]!, "base64").length).toBe(48 + A_OF_ACME.length);
    const raw = published.filter((m) => m.json<Task>().executionId === executionId).map((m) => m.string()).join("\n");
    expectFreeOfPlaintext(raw);
  });

  it("audits every secret handed out: execution, step, attempt, key, pool and time", async () => {
    const { executionId } = await mesh.api.start("uses-a", { input: {}, tenantId: "acme" });
    await mesh.waitForStatus(executionId, "completed");
    const { rows } = await mesh.engine.db.query<Record<string, unknown>>(
      "SELECT execution_id, step_id, attempt, tenant_id, key, pool, outcome, at FROM secret_access WHERE execution_id = $1",
      [executionId],
    );
    expect(rows).toEqual([
      { execution_id: executionId, step_id: "probe", attempt: 1, tenant_id: "acme", key: "a", pool: "us-east-1/secret-probe", outcome: "sealed", at: expect.any(Date) },
    ]);
  });

  it("keeps tenants apart: another tenant gets its own value, and a tenant without the key gets none", async () => {
    const globex = await mesh.api.start("uses-a", { input: {}, tenantId: "globex" });
    expect((await mesh.waitForStatus(globex.executionId, "completed")).output).toMatchObject({ hashes: { a: sha256(A_OF_GLOBEX) } });

    // globex stored no "b": acme's "b" is not handed to it, and nothing is published for the step.
    const { executionId } = await mesh.api.start("uses-b", { input: {}, tenantId: "globex" });
    const failed = await mesh.waitForStatus(executionId, "failed");
    expect(failed.steps[0]!.error).toMatchObject({ code: "VAULT_KEY_NOT_FOUND", retryable: false });
    expect(failed.steps[0]!.error!.message).toContain("tenant globex");
    expect(tasksOf(executionId).filter((t) => t.stepId === "probe")).toEqual([]);
    const { rows } = await mesh.engine.db.query<{ outcome: string }>("SELECT outcome FROM secret_access WHERE execution_id = $1", [executionId]);
    expect(rows.map((r) => r.outcome)).toEqual(["VAULT_KEY_NOT_FOUND"]);
  });

  it("an execution without a tenant reads the untenanted vault only", async () => {
    const { executionId } = await mesh.api.start("uses-a", { input: {} });
    const failed = await mesh.waitForStatus(executionId, "failed");
    expect(failed.steps[0]!.error).toMatchObject({ code: "VAULT_KEY_NOT_FOUND" });
  });

  it("seals a task before it waits in its tenant's queue, and it opens once admitted", async () => {
    const { executionId } = await mesh.api.start("parallel", { input: {}, tenantId: "acme" });
    const view = await mesh.waitForStatus(executionId, "completed");
    expect(view.output).toEqual({
      one: { keys: ["a"], hashes: { a: sha256(A_OF_ACME) }, hasB: false },
      two: { keys: ["a", "b"], hashes: { a: sha256(A_OF_ACME), b: sha256(B_OF_ACME) }, hasB: true },
    });
    const { rows } = await mesh.engine.db.query<{ n: number }>("SELECT count(*)::int AS n FROM secret_access WHERE execution_id = $1 AND outcome = 'sealed'", [executionId]);
    expect(rows[0]!.n).toBe(3);
  });
});

describe("pools that must not open them", () => {
  it("a worker holding another region's key cannot open them: the step fails with VAULT_SEALED_FOR_ANOTHER_POOL", async () => {
    const { executionId } = await mesh.api.start("uses-a-in-eu", { input: {}, tenantId: "acme" });
    const failed = await mesh.waitForStatus(executionId, "failed");
    expect(failed.steps[0]!.error).toMatchObject({ code: "VAULT_SEALED_FOR_ANOTHER_POOL", retryable: false });
    expect(failed.steps[0]!.error!.message).toContain("eu-west-1/secret-probe");
    // It was sealed for eu-west-1's key: that key opens it, the us-east-1 key the worker had does not.
    const [task] = tasksOf(executionId);
    const { openSealed } = await import("@flowmonkey/shared/vault");
    expect(openSealed(task!.vault["a"]!, us)).toBeUndefined();
    expect(Buffer.from(openSealed(task!.vault["a"]!, eu)!).toString("utf8")).toBe(A_OF_ACME);
  });

  it("a pool without a public key gets no task: the step fails with VAULT_POOL_KEY_MISSING", async () => {
    const { executionId } = await mesh.api.start("uses-a-in-ap", { input: {}, tenantId: "acme" });
    const failed = await mesh.waitForStatus(executionId, "failed");
    expect(failed.steps[0]!.error).toMatchObject({ code: "VAULT_POOL_KEY_MISSING", retryable: false });
    expect(tasksOf(executionId)).toEqual([]);
  });
});

describe("where plaintext never goes", () => {
  it("is not in the secrets table, the outbox, task rows, dead letters or rejections", async () => {
    const tables = ["secrets", "outbox", "tasks", "executions", "dead_tasks", "rejections", "secret_access", "tenant_queue"];
    for (const table of tables) {
      const { rows } = await mesh.engine.db.query<{ row: string }>(`SELECT row_to_json(t)::text AS row FROM ${table} t`);
      expectFreeOfPlaintext(rows.map((r) => r.row).join("\n"));
    }
    const { rows } = await mesh.engine.db.query<{ n: number }>("SELECT count(*)::int AS n FROM secrets");
    expect(rows[0]!.n).toBe(3);
  });

  it("is not in logs (engine and workers at trace), results, execution events or error replies", async () => {
    const { executions } = await mesh.api.list({ limit: 500 });
    expect(executions.length).toBeGreaterThan(5);
    const views = await Promise.all(executions.map((e) => mesh.api.get(e.id)));
    expectFreeOfPlaintext(JSON.stringify(views));
    expect(events.length).toBeGreaterThan(10);
    expectFreeOfPlaintext(events.join("\n"));
    // The capture really holds both sides at trace level, including the handler's own line.
    expect(logLines.some((l) => l.includes('"probe ran"'))).toBe(true);
    expect(logLines.some((l) => l.includes('"component":"engine"'))).toBe(true);
    expectFreeOfPlaintext(logLines.join(""));
    // A refused put answers with the rule it broke, not the value it was given.
    const tooLong = secretValue("x").repeat(4000);
    const refused = await mesh.api.putSecret({ key: "bad key!", value: tooLong }).catch((err: unknown) => err as Error);
    expect(refused).toMatchObject({ code: "INVALID_INPUT" });
    expect(JSON.stringify(refused) + String((refused as Error).message)).not.toContain(tooLong.slice(0, 40));
  });

  it("lists secret names, never values", async () => {
    const listed = await mesh.api.listSecrets("acme");
    expect(listed.secrets.map((s) => s.key)).toEqual(["a", "b"]);
    expectFreeOfPlaintext(JSON.stringify(listed));
  });
});

/** No plaintext, and not its base64 or hex either. */
function expectFreeOfPlaintext(text: string): void {
  for (const value of PLAINTEXTS) {
    expect(text).not.toContain(value);
    expect(text).not.toContain(toBase64(Buffer.from(value)).slice(0, 24));
    expect(text).not.toContain(Buffer.from(value).toString("hex").slice(0, 32));
  }
}

