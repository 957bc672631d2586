import type { JsMsg } from "@nats-io/jetstream";
import type { Logger } from "@flowmonkey/shared";

/** Deliveries of one message the engine tries before giving it up as poison. */
export const MAX_ENGINE_DELIVERIES = 8;

/**
 * A message the engine could not process (database down, a bug): try again later with a
 * growing delay; after MAX_ENGINE_DELIVERIES, terminate it so it cannot loop forever, and say
 * so loudly — the log line carries the subject and stream position to find it again.
 */
export function retryLater(msg: JsMsg, err: Error, log: Logger): void {
  const deliveries = msg.info.deliveryCount;
  if (deliveries >= MAX_ENGINE_DELIVERIES) {
    log.error({ err, subject: msg.subject, streamSeq: msg.seq, deliveries }, "giving up on a message that keeps failing");
    // No reason text: nats-server 2.9 ignores a `+TERM <reason>` ack entirely.
    msg.term();
    return;
  }
  log.warn({ err, subject: msg.subject, streamSeq: msg.seq, deliveries }, "processing failed; will retry");
  msg.nak(Math.min(30_000, 500 * 2 ** (deliveries - 1)));
}
