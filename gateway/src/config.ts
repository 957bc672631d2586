import { fields, jsonText, type ConfigOf } from "@flowmonkey/shared";
import { ApiTokens } from "./http/auth/tokens.js";

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
  otlpEndpoint: fields.otlpEndpoint,
  apiTokens: {
    schema: jsonText(ApiTokens).optional(),
    env: "FM_API_TOKENS",
    doc: 'API tokens as JSON {"<sha256 hex of token>": {"tenantId"?: "...", "scopes": ["read"|"write"|"admin"], "name"?: "..."}}; set: every /v1 route needs Authorization: Bearer <token>',
  },
};

export type GatewayConfig = ConfigOf<typeof gatewayConfig>;
