import { access } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { UsageError } from "../args.js";

/**
 * The repository root: this file runs from gateway/dist/cli/dev/, so the root is four levels
 * up (gateway/dist/cli is three). The dev mesh runs the other binaries from their built dist
 * files, as separate processes, so the gateway never imports engine or worker code.
 */
export const repoRoot = fileURLToPath(new URL("../../../../", import.meta.url));

export const devPaths = {
  engine: join(repoRoot, "engine/dist/main.js"),
  worker: join(repoRoot, "worker/dist/main.js"),
  gateway: join(repoRoot, "gateway/dist/main.js"),
  natsConfig: join(repoRoot, "nats-config/dev.conf"),
  examples: join(repoRoot, "examples/flows"),
  /** `flowmonkey task replay` runs the handler with the worker's own runner, in this child. */
  replayRunner: join(repoRoot, "worker/dist/replay-main.js"),
};

/** Fails with one clear instruction when a binary has not been built. */
export async function checkBuilt(): Promise<void> {
  const missing: string[] = [];
  for (const file of [devPaths.engine, devPaths.worker, devPaths.gateway]) {
    await access(file).catch(() => missing.push(file));
  }
  if (missing.length > 0) {
    throw new UsageError(`not built: ${missing.join(", ")}. Run \`npm run build\` (or \`npm start\`, which builds first).`);
  }
}
