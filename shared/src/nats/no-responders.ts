import { NoRespondersError, RequestError, TimeoutError } from "@nats-io/nats-core";

/**
 * True when a request (a JetStream publish included) found nobody listening: for a task publish,
 * no stream in reach captures the subject — the region's leaf link is down. The JetStream client
 * wraps it (`JetStreamNotEnabled`, cause RequestError), so the cause chain is walked; the message
 * text is never read.
 */
export function isNoResponders(err: unknown): boolean {
  return someCause(err, (e) => e instanceof NoRespondersError || (e instanceof RequestError && e.isNoResponders()));
}

/**
 * True when a request to another JetStream domain could not reach it: no responders (its link is
 * down) or no answer in time (a link going down mid-request). Whether the request took effect is
 * unknown after a timeout, so only idempotent requests may be repeated on it.
 */
export function isUnreachable(err: unknown): boolean {
  return isNoResponders(err) || someCause(err, (e) => e instanceof TimeoutError);
}

function someCause(err: unknown, test: (e: Error) => boolean): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    if (test(e)) return true;
  }
  return false;
}
