import { encode } from "@flowmonkey/shared";

/**
 * A message body's bytes, encoded once per body object: the payload guard measures every
 * message before it is committed and the relay publishes the same objects after the commit, so
 * the relay sends the bytes the guard measured instead of serializing each message a second
 * time (that pair was ~4 % of the engine's CPU at full load). Whoever changes a body in place
 * after it was measured calls forgetEncoded first.
 */
const encoded = new WeakMap<object, Uint8Array>();

export function encodedBody(body: unknown): Uint8Array {
  if (typeof body !== "object" || body === null) return encode(body);
  let bytes = encoded.get(body);
  if (!bytes) {
    bytes = encode(body);
    encoded.set(body, bytes);
  }
  return bytes;
}

export function forgetEncoded(body: unknown): void {
  if (typeof body === "object" && body !== null) encoded.delete(body);
}
