// Copies the non-TypeScript files the built packages need next to their JS output.
import { cpSync, existsSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const assets = [
  ["engine/src/store/migrations", "engine/dist/store/migrations"],
  ["gateway/src/dashboard", "gateway/dist/dashboard"],
];
for (const [from, to] of assets) {
  const src = join(root, from);
  if (!existsSync(src)) continue;
  mkdirSync(join(root, to), { recursive: true });
  cpSync(src, join(root, to), { recursive: true });
}
