import { encode } from "@flowmonkey/shared";

/**
 * A message body's bytes, encoded once per body object: the payload guard measures every
 * message before it is committed and the relay publishes the same objects after the commit, so
 * the relay sends the bytes the guard measured instead of serializing each message a second
 * time (that pair was ~4 % of the engine's CPU at full load). Sound because nothing changes a
 * body in place once it is measured: the context offload, the guard's trimmed events and
 * conclusions, and routing all put a new body object on the message.
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
