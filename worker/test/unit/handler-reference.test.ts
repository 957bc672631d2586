/** docs/HANDLERS.md is generated from the built-in handlers: it must match them, and its examples must be true. */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
// @ts-expect-error -- a plain .mjs script shared with `npm run docs:handlers`
import { handlerReferencePage, undocumentedHandlers } from "../../../scripts/handler-reference-page.mjs";
import { builtInHandlers, delay, echo, fail, transform } from "../../src/handlers/index.js";
import type { AnyHandler } from "../../src/sdk/define-handler.js";
import { makeTask, runHandler } from "../helpers.js";

const docsOf = (handler: AnyHandler) => {
  if (!handler.docs) throw new Error(`${handler.type} has no docs`);
  return handler.docs;
};

async function runExample(handler: AnyHandler) {
  const outcome = await runHandler(handler, makeTask({ type: handler.type, input: docsOf(handler).example.input })).outcome;
  if (outcome.kind !== "result") throw new Error(`expected a result, got ${outcome.kind}`);
  return outcome.result;
}

describe("docs/HANDLERS.md", () => {
  it("documents every built-in and every input key (add docs and .describe() to a new one)", () => {
    expect(undocumentedHandlers()).toEqual([]);
  });

  it("is what the handlers generate (run `npm run docs:handlers` after changing one)", () => {
    const current = readFileSync(new URL("../../../docs/HANDLERS.md", import.meta.url), "utf8");
    expect(current).toBe(handlerReferencePage());
  });

  it.each([echo, transform])("the $type example gives the output it shows", async (handler) => {
    expect(await runExample(handler)).toMatchObject({ outcome: "success", output: docsOf(handler).example.output });
  });

  it("the delay example waits what it says", async () => {
    const result = await runExample(delay);
    expect(result).toMatchObject({ outcome: "success" });
    const { waitedMs } = (result as { output: { waitedMs: number } }).output;
    expect(waitedMs).toBeGreaterThanOrEqual((docsOf(delay).example.input as { ms: number }).ms);
  });

  it("the fail example fails the way it shows", async () => {
    const { error } = docsOf(fail).example.output as { error: Record<string, unknown> };
    expect(await runExample(fail)).toMatchObject({ outcome: "failure", failure: error });
  });

  it.each(Object.values(builtInHandlers))("the $type example's input is valid for it", (handler) => {
    expect(handler.input?.safeParse(docsOf(handler).example.input).success ?? true).toBe(true);
  });
});
