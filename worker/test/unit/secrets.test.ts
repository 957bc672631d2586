import { describe, expect, it } from "vitest";
import { generatePoolKeyPair, sealFor, type VaultKeyPair } from "@flowmonkey/shared/vault";
import { defineHandler } from "../../src/sdk/define-handler.js";
import type { SecretsApi } from "../../src/sdk/handler-context.js";
import { resolveWorkerOptions, WorkerOptionsError } from "../../src/worker-options.js";
import { makeTask, runHandler } from "../helpers.js";

const pool = generatePoolKeyPair();
const sealed = (value: string, keys: VaultKeyPair = pool) => sealFor(keys.publicKey, new TextEncoder().encode(value));

/** Keeps its SecretsApi so the test can look at it after the task ended. */
function probe() {
  const seen: { api?: SecretsApi; ran: boolean } = { ran: false };
  const handler = defineHandler({
    type: "probe",
    execute(ctx) {
      seen.ran = true;
      seen.api = ctx.secrets;
      return { keys: ctx.secrets.keys(), token: ctx.secrets.get("token")?.length, other: ctx.secrets.get("other") ?? null };
    },
  });
  return { handler, seen };
}

const failureOf = async (run: ReturnType<typeof runHandler>) => {
  const outcome = await run.outcome;
  if (outcome.kind !== "result" || outcome.result.outcome !== "failure") throw new Error(`expected a failure, got ${JSON.stringify(outcome)}`);
  return outcome.result.failure;
};

describe("ctx.secrets", () => {
  it("holds the task's opened secrets while the handler runs, and nothing once the task ended", async () => {
    const { handler, seen } = probe();
    const run = runHandler(handler, makeTask({ type: "probe", vault: { token: sealed("tok-123456") } }), new Map([["probe", pool]]));
    const outcome = await run.outcome;
    expect(outcome).toMatchObject({ kind: "result", result: { outcome: "success", output: { keys: ["token"], token: 10, other: null } } });
    expect(seen.api!.get("token")).toBeUndefined();
    expect(seen.api!.keys()).toEqual([]);
  });

  it("is empty for a task without secrets, with or without a key", async () => {
    const { handler } = probe();
    const outcome = await runHandler(handler, makeTask({ type: "probe" })).outcome;
    expect(outcome).toMatchObject({ result: { outcome: "success", output: { keys: [] } } });
  });

  it("a value sealed for another pool fails the task before the handler runs, naming the key and pool, not the value", async () => {
    const { handler, seen } = probe();
    const other = generatePoolKeyPair();
    const task = makeTask({ type: "probe", vault: { token: sealed("tok-123456", other) } });
    const failure = await failureOf(runHandler(handler, task, new Map([["probe", pool]])));
    expect(failure).toMatchObject({ code: "VAULT_SEALED_FOR_ANOTHER_POOL", retryable: false });
    expect(failure.message).toBe('secret "token" was not sealed for this worker\'s key of pool test-1/probe; it cannot be opened here');
    expect(seen.ran).toBe(false);
  });

  it("sealed secrets reaching a worker without a key fail with VAULT_NOT_CONFIGURED", async () => {
    const { handler, seen } = probe();
    const failure = await failureOf(runHandler(handler, makeTask({ type: "probe", vault: { token: sealed("x") } })));
    expect(failure).toMatchObject({ code: "VAULT_NOT_CONFIGURED", retryable: false });
    expect(seen.ran).toBe(false);
  });
});

describe("vault keys in worker options", () => {
  const base = { nc: {} as never, log: {} as never, region: "eu-west-1", handlers: ["echo", "transform"] };

  it("a worker-wide key serves every handler; a handler's own key overrides it", () => {
    const own = generatePoolKeyPair();
    const resolved = resolveWorkerOptions({ ...base, vaultPrivateKey: pool.privateKey, vaultPrivateKeys: { transform: own.privateKey } });
    expect([...resolved.vaultKeys.get("echo")!.publicKey]).toEqual([...pool.publicKey]);
    expect([...resolved.vaultKeys.get("transform")!.publicKey]).toEqual([...own.publicKey]);
  });

  it("refuses a key of the wrong size or for a handler the worker does not serve, without printing it", () => {
    expect(() => resolveWorkerOptions({ ...base, vaultPrivateKey: new Uint8Array(31) })).toThrow(new WorkerOptionsError("createWorker: vaultPrivateKey must be 32 bytes"));
    expect(() => resolveWorkerOptions({ ...base, vaultPrivateKeys: { delay: pool.privateKey } })).toThrow(/vaultPrivateKeys: delay is not one of this worker's handlers/);
  });
});
