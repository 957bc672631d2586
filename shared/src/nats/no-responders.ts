import { NoRespondersError, RequestError } from "@nats-io/nats-core";

/**
 * True when a request (a JetStream publish included) found nobody listening: for a task publish,
 * no stream in reach captures the subject — the region's leaf link is down. The JetStream client
 * wraps it (`JetStreamNotEnabled`, cause RequestError), so the cause chain is walked; the message
 * text is never read.
 */
export function isNoResponders(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    if (e instanceof NoRespondersError) return true;
    if (e instanceof RequestError && e.isNoResponders()) return true;
  }
  return false;
}
