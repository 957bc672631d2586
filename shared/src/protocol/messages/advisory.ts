import { z } from "zod";

/**
 * `io.nats.jetstream.advisory.v1.max_deliver`: the server gave up delivering one message of a
 * consumer. Only the fields the engine uses are checked; the server adds others.
 */
export const MaxDeliveriesAdvisory = z.object({
  type: z.literal("io.nats.jetstream.advisory.v1.max_deliver"),
  stream: z.string().min(1),
  consumer: z.string().min(1),
  stream_seq: z.number().int().positive(),
  deliveries: z.number().int().nonnegative(),
});
export type MaxDeliveriesAdvisory = z.infer<typeof MaxDeliveriesAdvisory>;
