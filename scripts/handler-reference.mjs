// Writes docs/HANDLERS.md from the built-in handlers (npm run docs:handlers;
// test/handler-reference.test.ts fails when the file is stale). Needs a build first.
import { writeFileSync } from "node:fs";
import { handlerReferencePage, undocumentedHandlers } from "./handler-reference-page.mjs";

const missing = undocumentedHandlers();
if (missing.length > 0) console.warn(`undocumented: ${missing.join(", ")}`);
const target = new URL("../docs/HANDLERS.md", import.meta.url);
writeFileSync(target, handlerReferencePage());
console.log(`wrote ${target.pathname}`);
