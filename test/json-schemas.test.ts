/**
 * schemas/*.schema.json, the contract in JSON Schema, are what the zod schemas generate, and a
 * standard validator (ajv, draft 2020-12) accepts what the mesh accepts: the example flow files,
 * and a real task and result built the way the engine and worker build them.
 */
import { readFileSync, readdirSync } from "node:fs";
import { Ajv2020 } from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import { parse as parseYaml } from "yaml";
import { describe, expect, it } from "vitest";
import { contractJsonSchemas, Task, TaskResult } from "@flowmonkey/shared";

const SCHEMAS = new URL("../schemas/", import.meta.url);
const EXAMPLES = new URL("../examples/flows/", import.meta.url);
const generated = contractJsonSchemas();
const ajv = new Ajv2020({ strict: false, allErrors: true });
(addFormats as unknown as (a: Ajv2020) => void)(ajv);
const validator = (file: string) => ajv.compile(JSON.parse(generated[file]!) as object);

describe("schemas/", () => {
  it("holds exactly what the zod schemas generate (run `npm run schemas` after changing one)", () => {
    const onDisk = Object.fromEntries(readdirSync(SCHEMAS).filter((f) => f.endsWith(".schema.json")).map((f) => [f, readFileSync(new URL(f, SCHEMAS), "utf8")]));
    expect(onDisk).toEqual(generated);
  });

  it("flow.schema.json accepts every example flow and refuses a misspelled key", () => {
    const valid = validator("flow.schema.json");
    for (const file of readdirSync(EXAMPLES).filter((f) => /\.ya?ml$/.test(f))) {
      expect(valid(parseYaml(readFileSync(new URL(file, EXAMPLES), "utf8"))), `${file}: ${ajv.errorsText(valid.errors)}`).toBe(true);
    }
    expect(valid({ id: "x", steps: [{ id: "a", handler: "echo", dependson: ["b"] }] })).toBe(false);
  });

  it("task and result schemas accept a real task and its result, and refuse a result without an outcome", () => {
    // Built as the engine builds one, and checked by the zod schema first: a real task.
    const task = Task.parse({
      taskId: "exec-1/greet",
      executionId: "exec-1",
      flowId: "hello",
      flowVersion: 1,
      stepId: "greet",
      attempt: 1,
      handler: { type: "echo" },
      input: { name: "world" },
      context: {},
      config: { timeoutMs: 30_000, retries: 0, backoff: { kind: "exponential", initialDelayMs: 1000, maxDelayMs: 60_000, jitter: true } },
      vault: { "stripe.key": "c2VhbGVkIGJveA==" },
      metadata: { region: "us-east-1", priority: "normal", dispatchedAt: "2026-12-03T10:00:00.000Z" },
    });
    const taskValid = validator("task.schema.json");
    expect(taskValid(task), ajv.errorsText(taskValid.errors)).toBe(true);
    const resultValid = validator("task-result.schema.json");
    const result = TaskResult.parse({
      taskId: "exec-1/greet",
      executionId: "exec-1",
      stepId: "greet",
      attempt: 1,
      outcome: "success",
      output: { name: "world" },
      metrics: { startedAt: "2026-12-03T10:00:00.010Z", completedAt: "2026-12-03T10:00:00.012Z", durationMs: 2, workerId: "w-1", region: "us-east-1" },
    });
    expect(resultValid(result), ajv.errorsText(resultValid.errors)).toBe(true);
    const { outcome: _outcome, ...withoutOutcome } = result;
    expect(resultValid(withoutOutcome)).toBe(false);
  });
});
