import { fields, type ConfigOf } from "@flowmonkey/shared";

/** The gateway binary's options: env first, flags override (see shared loadConfig). */
export const gatewayConfig = {
  natsUrl: fields.natsUrl,
  natsCreds: fields.natsCreds,
  natsUser: fields.natsUser,
  natsPassword: fields.natsPassword,
  prefix: fields.prefix,
  httpPort: fields.httpPort,
  httpHost: fields.httpHost,
  maxMessageBytes: fields.maxMessageBytes,
  logLevel: fields.logLevel,
  logPretty: fields.logPretty,
  shutdownGraceMs: fields.shutdownGraceMs,
};

export type GatewayConfig = ConfigOf<typeof gatewayConfig>;
