// Writes schemas/*.schema.json from the contract's zod schemas (npm run schemas; the test
// test/json-schemas.test.ts fails when the checked-in files are stale). Needs a build first.
import { mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { contractJsonSchemas } from "@flowmonkey/shared";

const dir = new URL("../schemas/", import.meta.url);
mkdirSync(dir, { recursive: true });
const schemas = contractJsonSchemas();
for (const stale of readdirSync(dir)) if (stale.endsWith(".schema.json") && !(stale in schemas)) rmSync(new URL(stale, dir));
for (const [file, text] of Object.entries(schemas)) writeFileSync(new URL(file, dir), text);
console.log(`wrote ${Object.keys(schemas).length} schemas to ${dir.pathname}`);
