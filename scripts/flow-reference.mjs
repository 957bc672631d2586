// Writes docs/FLOWS.md from the flow definition's schema (npm run docs:flows;
// test/flow-reference.test.ts fails when the file is stale). Needs a build first.
import { writeFileSync } from "node:fs";
import { flowReferencePage, undocumentedKeys } from "./flow-reference-page.mjs";

const missing = undocumentedKeys();
if (missing.length > 0) console.warn(`keys without a description: ${missing.join(", ")}`);
const target = new URL("../docs/FLOWS.md", import.meta.url);
writeFileSync(target, flowReferencePage());
console.log(`wrote ${target.pathname}`);
