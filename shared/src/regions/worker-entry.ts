import { z } from "zod";
import { Region, Token } from "../protocol/tokens.js";

/**
 * A worker's entry in KV `fm_workers` (key: its workerId). Written by the worker, read by the
 * engine's router (which regions serve a handler, with which capabilities) and by operators.
 */
export const WorkerRegistryEntry = z.object({
  workerId: z.string().min(1),
  region: Region,
  handlers: z.array(Token),
  /** Older workers wrote no capabilities: none. */
  capabilities: z.array(Token).default([]),
  concurrency: z.number().int().nonnegative(),
  inFlight: z.number().int().nonnegative(),
  version: z.string(),
  host: z.string(),
  startedAt: z.string(),
});
export type WorkerRegistryEntry = z.infer<typeof WorkerRegistryEntry>;

/**
 * Every live worker in KV `fm_workers`, ordered by region, then id (for `flowmonkey workers` and
 * GET /v1/workers). `kv` is the hub's bucket. A malformed entry is skipped, not fatal.
 */
export async function listWorkerEntries(kv: {
  keys(): Promise<AsyncIterable<string>>;
  get(key: string): Promise<{ value: Uint8Array; operation: string } | null>;
}): Promise<WorkerRegistryEntry[]> {
  const out: WorkerRegistryEntry[] = [];
  for await (const key of await kv.keys()) {
    const e = await kv.get(key);
    if (!e || e.operation !== "PUT") continue;
    let json: unknown;
    try {
      json = JSON.parse(new TextDecoder().decode(e.value));
    } catch {
      continue;
    }
    const parsed = WorkerRegistryEntry.safeParse(json);
    if (parsed.success) out.push(parsed.data);
  }
  return out.sort((a, b) => a.region.localeCompare(b.region) || a.workerId.localeCompare(b.workerId));
}
