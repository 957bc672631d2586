/** docs/FLOWS.md is generated from the flow definition's schema: it must match it, and document every key. */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
// @ts-expect-error -- a plain .mjs script shared with `npm run docs:flows`
import { flowReferencePage, undocumentedKeys } from "../scripts/flow-reference-page.mjs";

describe("docs/FLOWS.md", () => {
  it("documents every key of a flow file (add .describe() to a new field)", () => {
    expect(undocumentedKeys()).toEqual([]);
  });

  it("is what the schema generates (run `npm run docs:flows` after changing the flow format)", () => {
    const current = readFileSync(new URL("../docs/FLOWS.md", import.meta.url), "utf8");
    expect(current).toBe(flowReferencePage());
  });
});
