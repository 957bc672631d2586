import type { JsMsg } from "@nats-io/jetstream";
import { excerpt, toError, type Logger } from "@flowmonkey/shared";
import type { Db } from "../store/db.js";
import { recordRejections } from "../store/rejections.js";

/** Deliveries of one message the engine tries before giving it up as poison. */
export const MAX_ENGINE_DELIVERIES = 8;

/** Where a message given up on is recorded (absent: only the log line says so). */
export type GiveUpRecorder = (msg: JsMsg, err: Error) => Promise<void>;

/**
 * A message the engine could not process (database down, a bug): try again later with a
 * growing delay; after MAX_ENGINE_DELIVERIES, terminate it so it cannot loop forever, and say
 * so loudly — the log line carries the subject and stream position to find it again, and
 * `recordGiveUp` writes a rejection row, so input is never dropped without a record.
 */
export function retryLater(msg: JsMsg, err: Error, log: Logger, recordGiveUp?: GiveUpRecorder): void {
  const deliveries = msg.info.deliveryCount;
  if (deliveries >= MAX_ENGINE_DELIVERIES) {
    log.error({ err, subject: msg.subject, streamSeq: msg.seq, deliveries }, "giving up on a message that keeps failing");
    const terminate = () => {
      try {
        // No reason text: nats-server 2.9 ignores a `+TERM <reason>` ack entirely.
        msg.term();
      } catch {
        // Connection closed: the message comes back, one delivery past the limit, and is given up again.
      }
    };
    if (!recordGiveUp) return terminate();
    // Terminated once recorded (or once recording failed too: the log line is then the only trace).
    void recordGiveUp(msg, err)
      .catch((recordErr: unknown) => log.error({ err: toError(recordErr), subject: msg.subject, streamSeq: msg.seq }, "could not record the message given up on"))
      .finally(terminate);
    return;
  }
  log.warn({ err, subject: msg.subject, streamSeq: msg.seq, deliveries }, "processing failed; will retry");
  msg.nak(Math.min(30_000, 500 * 2 ** (deliveries - 1)));
}

/** Records a message given up on as a rejection (code INTERNAL: the engine failed it, not its sender). */
export function rejectionRecorder(db: Db): GiveUpRecorder {
  return (msg, err) =>
    recordRejections(db, [
      {
        subject: msg.subject,
        code: "INTERNAL",
        reason: `given up after ${msg.info.deliveryCount} deliveries: ${toError(err).message}`.slice(0, 2000),
        excerpt: excerpt(msg.data),
      },
    ]);
}
