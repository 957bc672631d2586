import type { ServiceMsg } from "@nats-io/services";
import { encode, FmError } from "@flowmonkey/shared";

/** Answers a request with a JSON value, or an FmError as `{"error":{code,message}}` plus the service error headers. */
export function respond(msg: ServiceMsg, value: unknown): void {
  if (!msg.reply) return;
  if (value instanceof FmError) msg.respondError(value.httpStatus, `${value.code}: ${value.message}`, encode(value.toReply()));
  else msg.respond(encode(value));
}
