import { JetStreamApiError } from "@nats-io/jetstream";
import { ClosedConnectionError, ConnectionError, DrainingConnectionError } from "@nats-io/nats-core";
import { FmError, isUnreachable, toError, type ErrorCode } from "@flowmonkey/shared";

/**
 * What one failed publish means for its outbox message:
 * - `refused`: the same bytes will be refused again (larger than the server's max_payload);
 *   trying again only blocks the row, so the message is given up on at once.
 * - `transient`: the mesh is busy or cut off (a full task queue, a region's link down, a
 *   leaderless stream, a reconnect); the protocol promises such tasks wait in the outbox, so
 *   they are tried again for as long as it takes.
 * - `unknown`: anything else; tried again a bounded number of times, then given up on.
 */
/** Room for the Nats-Msg-Id header and for routing's rewrites (another region's name in metadata). */
export const PUBLISH_HEADROOM_BYTES = 512;

export type PublishFailureKind = "refused" | "transient" | "unknown";

export interface PublishFailure {
  kind: PublishFailureKind;
  code: ErrorCode;
  message: string;
}

/** The relay's own refusal of a message larger than the server takes (measured, not sniffed from an error text). */
export class MessageTooLargeError extends FmError {
  constructor(
    readonly bytes: number,
    readonly maxPayload: number,
  ) {
    super("PAYLOAD_TOO_LARGE", `the message is ${bytes} bytes with its headers; the NATS server takes at most ${maxPayload} (max_payload)`);
  }
}

export function classifyPublishFailure(thrown: unknown): PublishFailure {
  const err = toError(thrown);
  if (err instanceof MessageTooLargeError) return { kind: "refused", code: "PAYLOAD_TOO_LARGE", message: err.message };
  const transient =
    isUnreachable(err) ||
    err instanceof ClosedConnectionError ||
    err instanceof DrainingConnectionError ||
    err instanceof ConnectionError ||
    // Server-side state: a full work queue (discard new), a stream without a leader.
    err instanceof JetStreamApiError ||
    // Routing holds (REGION_UNAVAILABLE, RESIDENCY_UNKNOWN, CAPABILITY_UNAVAILABLE) are retryable by code.
    (err instanceof FmError && err.retryable && err.code !== "INTERNAL");
  return { kind: transient ? "transient" : "unknown", code: "PUBLISH_FAILED", message: err.message };
}
