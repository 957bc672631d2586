import { z } from "zod";
import { Token } from "../tokens.js";
import { Timestamp } from "./common.js";

/** Body of `fm.events.<name>`: custom events from handlers or anyone. */
export const Event = z.object({
  data: z.unknown().default(null),
  executionId: Token.optional(),
  stepId: Token.optional(),
  at: Timestamp.optional(),
});
export type Event = z.infer<typeof Event>;
