import { z } from "zod";

/**
 * A checkpoint entry in KV `fm_checkpoints` (key `<region>.<executionId>.<stepId>`): the saved
 * state itself, or — over the inline limit — where its gzip'd copy `{"state": …}` is in the
 * region's blob bucket (`fm_blobs_<region>`).
 */
export const CheckpointEnvelope = z.union([
  z.object({ state: z.unknown() }).strict(),
  z.object({ blob: z.string(), bytes: z.number().int() }).strict(),
]);
export type CheckpointEnvelope = z.infer<typeof CheckpointEnvelope>;
