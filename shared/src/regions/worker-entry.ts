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
