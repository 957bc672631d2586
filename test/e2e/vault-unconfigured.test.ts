/** An engine without FM_VAULT_KEY: the vault says so with VAULT_NOT_CONFIGURED, it never crashes or sends secrets-less tasks. */
import { afterAll, beforeAll, expect, it } from "vitest";
import { defineHandler } from "@flowmonkey/worker";
import { startMesh, type TestMesh } from "../support/mesh.js";
import { useNatsServer } from "../support/nats.js";
import { useTestDatabase } from "../support/postgres.js";

const nats = useNatsServer();
const pg = useTestDatabase();
let mesh: TestMesh;
let ran = 0;

beforeAll(async () => {
  mesh = await startMesh({ natsUrl: nats.url, databaseUrl: pg.url, workers: [{ handlers: ["echo"] }] });
  await mesh.startWorker({ handlers: [defineHandler({ type: "needs-secret", execute: () => ++ran })] });
  await mesh.putFlow({
    id: "needs-secret",
    steps: [
      { id: "use", handler: "needs-secret", vault: ["token"], onFailure: "continue" },
      { id: "after", handler: "echo", input: { ok: true } },
    ],
  });
});
afterAll(async () => {
  await mesh?.close();
});

it("refuses secrets.put and secrets.list with VAULT_NOT_CONFIGURED", async () => {
  await expect(mesh.api.putSecret({ key: "token", value: "v" })).rejects.toMatchObject({ code: "VAULT_NOT_CONFIGURED" });
  await expect(mesh.api.listSecrets()).rejects.toMatchObject({ code: "VAULT_NOT_CONFIGURED" });
});

it("fails a step that asks for secrets without running it, and the execution goes on as the flow says", async () => {
  const { executionId } = await mesh.api.start("needs-secret", { input: {} });
  const view = await mesh.waitForStatus(executionId, "completed");
  expect(view.steps.map((s) => [s.stepId, s.status, s.error?.code])).toEqual([
    ["use", "failed", "VAULT_NOT_CONFIGURED"],
    ["after", "completed", undefined],
  ]);
  expect(ran).toBe(0);
});
