import { InvalidArgumentError } from "@nats-io/nats-core";
import type { ServiceMsg } from "@nats-io/services";
import { encode, FmError } from "@flowmonkey/shared";

/**
 * Answers a request with a JSON value, or an FmError as `{"error":{code,message}}` plus the
 * service error headers. A reply over the server's max_payload (the client refuses it with an
 * InvalidArgumentError before anything is sent) is answered with PAYLOAD_TOO_LARGE instead of
 * leaving the requester to time out.
 */
export function respond(msg: ServiceMsg, value: unknown): void {
  if (!msg.reply) return;
  if (value instanceof FmError) return void msg.respondError(value.httpStatus, `${value.code}: ${value.message}`, encode(value.toReply()));
  const data = encode(value);
  try {
    msg.respond(data);
  } catch (err) {
    if (!(err instanceof InvalidArgumentError)) throw err;
    const tooLarge = new FmError("PAYLOAD_TOO_LARGE", `the reply is ${data.byteLength} bytes, over the NATS server's max_payload`, { cause: err });
    msg.respondError(tooLarge.httpStatus, `${tooLarge.code}: ${tooLarge.message}`, encode(tooLarge.toReply()));
  }
}
