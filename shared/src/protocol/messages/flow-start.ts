import { z } from "zod";
import { Priority, Region, Token } from "../tokens.js";
import { JsonObject } from "./common.js";

/** Body of `fm.flows.start.<flowId>` and `fm.api.flows.start.<flowId>`. */
export const FlowStart = z
  .object({
    input: z.unknown().default({}),
    context: JsonObject.optional(),
    executionId: Token.optional(),
    tenantId: z.string().min(1).max(128).optional(),
    region: Region.optional(),
    priority: Priority.optional(),
    labels: z.record(z.string().max(128), z.string().max(1024)).optional(),
  })
  .strict();
export type FlowStart = z.infer<typeof FlowStart>;
export type FlowStartInput = z.input<typeof FlowStart>;
