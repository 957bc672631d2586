import { z } from "zod";

/**
 * `io.nats.jetstream.advisory.v1.max_deliver`: the server gave up delivering one message of a
 * consumer. Only the fields the engine uses are checked; the server adds others (`id`, `timestamp`).
 */
export const MaxDeliveriesAdvisory = z.object({
  type: z.literal("io.nats.jetstream.advisory.v1.max_deliver"),
  stream: z.string().min(1),
  consumer: z.string().min(1),
  stream_seq: z.number().int().positive(),
  deliveries: z.number().int().nonnegative(),
  /**
   * The JetStream domain of the server that gave up, hence of the stream holding the message
   * (nats-server 2.9.10 sets it when the server has a domain; absent on a server without one).
   */
  domain: z.string().min(1).optional(),
});
export type MaxDeliveriesAdvisory = z.infer<typeof MaxDeliveriesAdvisory>;
