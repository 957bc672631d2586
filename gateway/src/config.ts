import { z } from "zod";
import { fields, jsonText, type ConfigOf } from "@flowmonkey/shared";
import { ApiTokens } from "./http/auth/tokens.js";

/** The gateway binary's options: env first, flags override (see shared loadConfig). */
export const gatewayConfig = {
  natsUrl: fields.natsUrl,
  natsCreds: fields.natsCreds,
  natsUser: fields.natsUser,
  natsPassword: fields.natsPassword,
  natsTlsCa: fields.natsTlsCa,
  natsTlsCert: fields.natsTlsCert,
  natsTlsKey: fields.natsTlsKey,
  prefix: fields.prefix,
  httpPort: fields.httpPort,
  httpHost: fields.httpHost,
  maxMessageBytes: fields.maxMessageBytes,
  logLevel: fields.logLevel,
  logPretty: fields.logPretty,
  shutdownGraceMs: fields.shutdownGraceMs,
  otlpEndpoint: fields.otlpEndpoint,
  corsOrigins: {
    schema: z
      .string()
      .optional()
      .transform((v) => (v ? v.split(",").map((o) => o.trim()).filter(Boolean) : []))
      .pipe(z.array(z.string().regex(/^https?:\/\/[^/\s]+$/, "must be an origin such as https://ops.example.com"))),
    env: "FM_HTTP_CORS_ORIGINS",
    flag: "cors-origins",
    doc: "origins allowed to call the API from a browser (comma-separated, e.g. https://ops.example.com); unset: no CORS headers, so other sites' pages cannot",
  },
  tlsCert: {
    schema: z.string().min(1).optional(),
    env: "FM_HTTP_TLS_CERT",
    flag: "tls-cert",
    doc: "PEM certificate file (chain first) to serve HTTPS instead of HTTP; needs FM_HTTP_TLS_KEY",
  },
  tlsKey: {
    schema: z.string().min(1).optional(),
    env: "FM_HTTP_TLS_KEY",
    flag: "tls-key",
    doc: "PEM private key file of FM_HTTP_TLS_CERT",
  },
  apiTokens: {
    schema: jsonText(ApiTokens).optional(),
    env: "FM_API_TOKENS",
    doc: 'API tokens as JSON {"<sha256 hex of token>": {"tenantId"?: "...", "scopes": ["read"|"write"|"admin"], "name"?: "..."}}; set: every /v1 route needs Authorization: Bearer <token>',
  },
};

export type GatewayConfig = ConfigOf<typeof gatewayConfig>;
