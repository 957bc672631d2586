/**
 * `npm run vectors`: captures the worker protocol's test vectors, schemas/vectors/*.json — real
 * tasks as the engine published them and the results the TypeScript worker answered, off the
 * wire of a real mesh (nats-server, PostgreSQL, engine, the TypeScript worker serving
 * test/conformance/typescript-handlers.mjs). Each file: what the case shows, the task, the
 * result, and `expect` (the fields of the result another worker must give for that task).
 * test/protocol-vectors.test.ts and the Python and Go SDKs' unit tests read them.
 * Rerun after a protocol change and commit the new files.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type { Msg } from "@nats-io/nats-core";
import { startNatsServer } from "@flowmonkey/shared/dev";
import { generatePoolKeyPair, toBase64 } from "@flowmonkey/shared/vault";
import { startMesh, type TestMesh } from "../support/mesh.js";
import { createTestDatabase } from "../support/postgres.js";
import { waitFor } from "../support/wait.js";

const OUT = resolve(import.meta.dirname, "../../schemas/vectors");
const pool = generatePoolKeyPair();
const SECRET = "vector-s3cret";

interface Case {
  name: string;
  description: string;
  flow: Parameters<TestMesh["putFlow"]>[0];
  input?: unknown;
  /** Which of the execution's attempts to keep (default: the first). */
  attempt?: number;
  expect: Record<string, unknown>;
  extra?: Record<string, unknown>;
}

const CASES: Case[] = [
  {
    name: "success",
    description: "a step whose handler returns: outcome success with its output (the handler reports progress 50 on the way)",
    flow: { id: "v-shout", steps: [{ id: "s", handler: "conf-shout", input: { text: "{% input.text %}" } }] },
    input: { text: "hello" },
    expect: { outcome: "success", output: { text: "HELLO", lang: "typescript" } },
  },
  {
    name: "retryable-failure",
    description: "a handler's RetryableFailure on attempt 1: outcome failure, retryable true (the engine dispatches attempt 2)",
    flow: { id: "v-flaky", steps: [{ id: "f", handler: "conf-flaky", retry: { maxAttempts: 2, initialDelayMs: 10, jitter: false } }] },
    expect: { outcome: "failure", attempt: 1, failure: { code: "FLAKY", retryable: true } },
  },
  {
    name: "retry-success",
    description: "the same step's attempt 2 succeeds",
    flow: { id: "v-flaky", steps: [{ id: "f", handler: "conf-flaky", retry: { maxAttempts: 2, initialDelayMs: 10, jitter: false } }] },
    attempt: 2,
    expect: { outcome: "success", attempt: 2, output: { attempt: 2 } },
  },
  {
    name: "non-retryable-failure",
    description: "a NonRetryableFailure: outcome failure, retryable false (the step fails at once)",
    flow: { id: "v-refuse", steps: [{ id: "r", handler: "conf-refuse", retry: { maxAttempts: 3, initialDelayMs: 10 } }] },
    expect: { outcome: "failure", failure: { code: "NOPE", retryable: false } },
  },
  {
    name: "wait",
    description: "a handler that parks its step: outcome wait with its resume token and the event that resumes it",
    flow: { id: "v-approve", steps: [{ id: "a", handler: "conf-approve" }] },
    expect: { outcome: "wait", wait: { resumeOn: { event: "conf.approved" } } },
  },
  {
    name: "context-updates",
    description: "a handler that writes the execution's context: its changes travel as contextUpdates with the success",
    flow: { id: "v-fill", steps: [{ id: "f", handler: "conf-fill", input: { key: "note", size: 12 } }] },
    expect: { outcome: "success", output: { filled: "note" }, contextUpdates: [{ op: "set", path: "note", value: "xxxxxxxxxxxx" }] },
  },
  {
    name: "vault-secret",
    description:
      "a step with `vault: [conf-token]`: the task's vault holds the value sealed (libsodium crypto_box_seal) for the pool's public key; " +
      "`poolPrivateKey` (a throwaway test key, base64) opens it to `secret`. The handler answers only a digest.",
    flow: { id: "v-secret", steps: [{ id: "s", handler: "conf-secret", vault: ["conf-token"] }] },
    expect: { outcome: "success", output: { length: SECRET.length } },
    extra: { poolPrivateKey: toBase64(pool.privateKey), secret: SECRET },
  },
];

// The conformance handlers, a plain .mjs module (as flowmonkey-worker --handler-modules loads it).
const HANDLERS = pathToFileURL(resolve(import.meta.dirname, "typescript-handlers.mjs")).href;
const handlers = (await import(HANDLERS)) as Record<string, Parameters<TestMesh["startWorker"]>[0]["handlers"][number]>;
const nats = await startNatsServer({});
const db = await createTestDatabase();
const mesh = await startMesh({
  natsUrl: nats.url,
  databaseUrl: db.url,
  prefix: "fm",
  workers: [],
  engine: { vaultKey: Buffer.alloc(32, 7), vaultPoolKeys: { "us-east-1": pool.publicKey } },
});
try {
  await mesh.startWorker({ handlers: Object.values(handlers), region: "us-east-1", worker: { vaultPrivateKey: pool.privateKey } });
  await mesh.api.putSecret({ key: "conf-token", value: SECRET });
  const seen: Array<{ kind: "task" | "result"; body: { executionId: string; attempt: number } }> = [];
  const record = (kind: "task" | "result") => (_err: Error | null, msg: Msg) => void seen.push({ kind, body: msg.json() });
  mesh.nc.subscribe(mesh.names.subjects.tasksAll, { callback: record("task") });
  mesh.nc.subscribe(mesh.names.subjects.resultsAll, { callback: record("result") });
  await mesh.nc.flush();
  mkdirSync(OUT, { recursive: true });
  for (const c of CASES) {
    await mesh.putFlow(c.flow);
    const { executionId } = await mesh.api.start(c.flow.id, { input: c.input ?? {} });
    const attempt = c.attempt ?? 1;
    const pick = (kind: "task" | "result") => seen.find((s) => s.kind === kind && s.body.executionId === executionId && s.body.attempt === attempt)?.body;
    const [task, result] = await waitFor(() => (pick("task") && pick("result") ? [pick("task")!, pick("result")!] : undefined), { timeoutMs: 20_000, message: `${c.name}: task and result` });
    const vector = { description: c.description, ...c.extra, task, result, expect: c.expect };
    writeFileSync(resolve(OUT, `${c.name}.json`), `${JSON.stringify(vector, null, 2)}\n`);
    console.log(`schemas/vectors/${c.name}.json`);
  }
} finally {
  await mesh.close();
  await db.drop();
  await nats.stop();
}
