/**
 * schemas/vectors/*.json, the worker protocol's test vectors (captured by `npm run vectors` off a
 * real mesh: a task as the engine published it, the TypeScript worker's result): each still
 * parses with the contract's zod schemas and validates against schemas/*.schema.json, and each
 * result holds what its `expect` says. The Python and Go SDKs' unit tests read the same files.
 */
import { readFileSync, readdirSync } from "node:fs";
import { Ajv2020 } from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import { describe, expect, it } from "vitest";
import { Task, TaskResult } from "@flowmonkey/shared";
import { keyPairOf, openSealed } from "@flowmonkey/shared/vault";

const VECTORS = new URL("../schemas/vectors/", import.meta.url);
const SCHEMAS = new URL("../schemas/", import.meta.url);
const ajv = new Ajv2020({ strict: false, allErrors: true });
(addFormats as unknown as (a: Ajv2020) => void)(ajv);
const schema = (file: string) => ajv.compile(JSON.parse(readFileSync(new URL(file, SCHEMAS), "utf8")) as object);
const validTask = schema("task.schema.json");
const validResult = schema("task-result.schema.json");
const files = readdirSync(VECTORS).filter((f) => f.endsWith(".json"));

describe("schemas/vectors", () => {
  it("has the cases a worker must handle", () => {
    expect(files.sort()).toEqual(
      ["context-updates", "non-retryable-failure", "retry-success", "retryable-failure", "success", "vault-secret", "wait"].map((n) => `${n}.json`),
    );
  });

  it.each(files)("%s: the task and the result follow the contract, and the result is what `expect` says", (file) => {
    const vector = JSON.parse(readFileSync(new URL(file, VECTORS), "utf8")) as { task: unknown; result: unknown; expect: Record<string, unknown> };
    expect(Task.safeParse(vector.task).success).toBe(true);
    expect(TaskResult.safeParse(vector.result).success).toBe(true);
    expect(validTask(vector.task), ajv.errorsText(validTask.errors)).toBe(true);
    expect(validResult(vector.result), ajv.errorsText(validResult.errors)).toBe(true);
    expect(vector.result).toMatchObject(vector.expect);
  });

  it("vault-secret: the sealed value opens with the vector's pool key to its secret", () => {
    const vector = JSON.parse(readFileSync(new URL("vault-secret.json", VECTORS), "utf8")) as { poolPrivateKey: string; secret: string; task: { vault: Record<string, string> } };
    const keys = keyPairOf(Buffer.from(vector.poolPrivateKey, "base64"));
    expect(Buffer.from(openSealed(vector.task.vault["conf-token"]!, keys)!).toString("utf8")).toBe(vector.secret);
  });
});
