import { z } from "zod";
import { Token } from "../tokens.js";
import { Timestamp } from "./common.js";

/** Body of `fm.progress.<executionId>.<stepId>`; the latest one is also kept in KV. */
export const Progress = z.object({
  executionId: Token,
  stepId: Token,
  taskId: z.string().optional(),
  attempt: z.number().int().positive().optional(),
  percent: z.number().min(0).max(100),
  message: z.string().max(1024).optional(),
  estimatedCompletion: Timestamp.optional(),
  /** A map step's progress, published by the engine as its items end (no taskId): items ended of all, and failed. */
  items: z.object({ done: z.number().int().nonnegative(), total: z.number().int().nonnegative(), failed: z.number().int().nonnegative() }).optional(),
  checkpoint: z.object({ id: z.string(), savedAt: Timestamp, size: z.number().int().nonnegative() }).optional(),
  at: Timestamp,
});
export type Progress = z.infer<typeof Progress>;
