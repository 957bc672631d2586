import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";

// The OS tools a sandbox is started through (isolation.ts) are looked up once per process.
const found = new Map<string, string | null>();

/** An executable on PATH (or the system directories), looked up once per process. */
export function tool(name: string): string | null {
  if (found.has(name)) return found.get(name)!;
  const dirs = [...(process.env["PATH"] ?? "").split(delimiter), "/usr/bin", "/bin", "/usr/sbin", "/sbin"];
  let path: string | null = null;
  for (const dir of dirs) {
    if (!dir) continue;
    try {
      accessSync(join(dir, name), constants.X_OK);
      path = join(dir, name);
      break;
    } catch {
      // not here
    }
  }
  found.set(name, path);
  return path;
}
