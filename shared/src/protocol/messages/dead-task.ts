import { z } from "zod";
import { Failure, Timestamp } from "./common.js";
import { Task } from "./task.js";

/** Body of `fm.dlq.<region>.<handler>`: a task that will not be tried again on its own. */
export const DeadTask = z.object({
  id: z.string().min(1),
  task: Task,
  reason: z.enum(["deliveries_exhausted", "attempts_exhausted", "undeliverable"]),
  lastError: Failure.optional(),
  deliveries: z.number().int().nonnegative(),
  at: Timestamp,
});
export type DeadTask = z.infer<typeof DeadTask>;
