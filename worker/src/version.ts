import { readFileSync } from "node:fs";
import { z } from "zod";

/** This package's version, from its package.json (one level above both src/ and dist/). */
export const WORKER_VERSION: string = (() => {
  try {
    const pkg = z.object({ version: z.string() }).safeParse(JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")));
    return pkg.success ? pkg.data.version : "unknown";
  } catch {
    // Bundled or relocated without its package.json: the registry says so instead of failing.
    return "unknown";
  }
})();
