// Writes docs/CONFIGURATION.md from the binaries' config field definitions (npm run docs:config;
// test/config-reference.test.ts fails when the file is stale). Needs a build first.
import { writeFileSync } from "node:fs";
import { configReferencePage } from "./config-reference-page.mjs";

const target = new URL("../docs/CONFIGURATION.md", import.meta.url);
writeFileSync(target, await configReferencePage());
console.log(`wrote ${target.pathname}`);
