/** docs/CONFIGURATION.md is generated from the binaries' config fields: it must match them. */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
// @ts-expect-error -- a plain .mjs script shared with `npm run docs:config`
import { configReferencePage } from "../scripts/config-reference-page.mjs";

describe("docs/CONFIGURATION.md", () => {
  it("is what the config fields generate (run `npm run docs:config` after changing an option)", async () => {
    const current = readFileSync(new URL("../docs/CONFIGURATION.md", import.meta.url), "utf8");
    expect(current).toBe(await configReferencePage());
  });
});
